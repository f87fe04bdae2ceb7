/**
 * /staff/stock (inventory:write): pick a product (search by name or SKU, or
 * type a SKU), see its stock per warehouse (`GET /v1/inventory/<sku>`), and
 * set the quantity on hand in a warehouse (`PUT /v1/inventory/<sku>`
 * `{warehouse, on_hand}`): in a listed one, or a new one. A 409 (below what
 * orders have reserved there) is shown beside the quantity with the reserved
 * amount. The chosen SKU is in the URL (`?sku=`), so a stock view can be linked.
 */

import { useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { api, ApiError } from "../../api/client";
import { describeError } from "../../api/errors";
import type { Page, Product, Stock } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Field } from "../../components/Field";
import { Loading } from "../../components/Loading";
import { formatMoney } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { useAuth } from "../../auth";
import { Notice, RequireScope, StaffPage, StatusBadge } from "./common";
import { SKU_MESSAGE, SKU_PATTERN, sentence, validateStock, type StockErrors } from "./forms";

export function StockPage() {
  return (
    <RequireScope scope="inventory:write" title="Stock">
      <StockManager />
    </RequireScope>
  );
}

function StockManager() {
  const [params, setParams] = useSearchParams();
  const sku = params.get("sku") ?? "";
  const choose = (next: string) => setParams(next ? { sku: next } : {});
  return (
    <StaffPage title="Stock">
      <ProductPicker onChoose={choose} />
      {sku ? <StockView key={sku} sku={sku} /> : <p className="muted">Choose a product to see its stock.</p>}
    </StaffPage>
  );
}

function ProductPicker({ onChoose }: { onChoose: (sku: string) => void }) {
  const auth = useAuth();
  const [draft, setDraft] = useState("");
  const [q, setQ] = useState<string | null>(null);
  const [typed, setTyped] = useState("");
  const [typedError, setTypedError] = useState<string | null>(null);
  // Inactive products still have stock; only catalog:write may list them.
  const withInactive = auth.hasScope("catalog:write");
  const results = useApi(
    (signal) =>
      q === null
        ? Promise.resolve(null)
        : api.get<Page<Product>>("/v1/products", {
            query: { q, limit: 10, include_inactive: withInactive || undefined },
            signal,
          }),
    [q, withInactive],
  );

  const submitSku = (event: FormEvent) => {
    event.preventDefault();
    const value = typed.trim().toUpperCase();
    if (!SKU_PATTERN.test(value)) {
      setTypedError(value ? SKU_MESSAGE : "Enter a SKU.");
      return;
    }
    setTypedError(null);
    onChoose(value);
  };

  return (
    <div className="card">
      <h2>Choose a product</h2>
      <form
        className="search"
        role="search"
        aria-label="Find a product"
        onSubmit={(event) => {
          event.preventDefault();
          setQ(draft.trim());
        }}
      >
        <label htmlFor="staff-stock-search" className="visually-hidden">
          Search products
        </label>
        <input
          id="staff-stock-search"
          className="input"
          type="search"
          maxLength={100}
          placeholder="Name or SKU"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
        <button type="submit" className="button">
          Search
        </button>
      </form>
      {q !== null ? (
        results.error ? (
          <ErrorMessage error={results.error} title="Could not search the products." onRetry={results.reload} />
        ) : results.loading || !results.value ? (
          <Loading label="Searching…" />
        ) : results.value.items.length === 0 ? (
          <p>No product matches{q ? ` “${q}”` : ""}.</p>
        ) : (
          <ul className="staff-choices" aria-label="Matching products">
            {results.value.items.map((product) => (
              <li key={product.id}>
                <button
                  type="button"
                  className="button secondary"
                  aria-label={`Choose ${product.name} (${product.sku})`}
                  onClick={() => onChoose(product.sku)}
                >
                  <span>{product.name}</span>
                  <span className="row">
                    <code>{product.sku}</code>
                    <span>{formatMoney(product.price)}</span>
                    {product.active ? null : <StatusBadge status="inactive" />}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        )
      ) : null}
      <form className="staff-inline-form" noValidate onSubmit={submitSku}>
        <Field label="SKU" error={typedError} hint="Or type a SKU.">
          {(props) => (
            <input
              {...props}
              type="text"
              maxLength={64}
              autoCapitalize="characters"
              spellCheck={false}
              value={typed}
              onChange={(event) => setTyped(event.target.value.toUpperCase())}
            />
          )}
        </Field>
        <button type="submit" className="button secondary">
          Show stock
        </button>
      </form>
    </div>
  );
}

function StockView({ sku }: { sku: string }) {
  const stock = useApi(
    (signal) =>
      api.get<Stock>(`/v1/inventory/${encodeURIComponent(sku)}`, { signal }).catch((error: unknown) => {
        // No stock recorded yet is a state of its own, not a failure.
        if (error instanceof ApiError && error.status === 404) return null;
        throw error;
      }),
    [sku],
  );
  const [notice, setNotice] = useState<string | null>(null);

  const saved = (next: Stock, warehouse: string, onHand: number) => {
    stock.setValue(next);
    setNotice(`${sku}: on hand in ${warehouse} set to ${onHand}.`);
  };

  return (
    <section className="card" aria-labelledby="stock-heading">
      <h2 id="stock-heading">
        Stock of <code>{sku}</code>
      </h2>
      <Notice message={notice} />
      {stock.error ? (
        <ErrorMessage error={stock.error} title="Could not load the stock." onRetry={stock.reload} />
      ) : stock.value === undefined ? (
        <Loading label="Loading the stock…" />
      ) : stock.value === null || stock.value.warehouses.length === 0 ? (
        <p>No stock is recorded for {sku} yet. Set it in a warehouse below.</p>
      ) : (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`Stock of ${sku} table`}>
          <table>
            <caption>Stock of {sku} by warehouse</caption>
            <thead>
              <tr>
                <th scope="col">Warehouse</th>
                <th scope="col" className="num">
                  On hand
                </th>
                <th scope="col" className="num">
                  Reserved
                </th>
                <th scope="col" className="num">
                  Available
                </th>
                <th scope="col">Set on hand</th>
              </tr>
            </thead>
            <tbody>
              {stock.value.warehouses.map((row) => (
                <tr key={row.warehouse}>
                  <th scope="row">{row.warehouse}</th>
                  <td className="num">{row.on_hand}</td>
                  <td className="num">{row.reserved}</td>
                  <td className="num">{row.available}</td>
                  <td>
                    <SetStockForm sku={sku} warehouse={row.warehouse} initial={row.on_hand} onSaved={saved} />
                  </td>
                </tr>
              ))}
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total</th>
                <td className="num">{stock.value.total.on_hand}</td>
                <td className="num">{stock.value.total.reserved}</td>
                <td className="num">{stock.value.total.available}</td>
                <td />
              </tr>
            </tfoot>
          </table>
        </div>
      )}
      {stock.value !== undefined ? (
        <>
          <h3>Stock in another warehouse</h3>
          <SetStockForm sku={sku} warehouse={null} initial={null} onSaved={saved} />
        </>
      ) : null}
    </section>
  );
}

/**
 * Sets on hand in one warehouse: `warehouse` given (a row of the table), or
 * typed (a new warehouse).
 */
function SetStockForm({
  sku,
  warehouse,
  initial,
  onSaved,
}: {
  sku: string;
  warehouse: string | null;
  initial: number | null;
  onSaved: (stock: Stock, warehouse: string, onHand: number) => void;
}) {
  const [name, setName] = useState(warehouse ?? "");
  const [onHand, setOnHand] = useState(initial === null ? "" : String(initial));
  const [errors, setErrors] = useState<StockErrors>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFailure(null);
    const checked = validateStock(warehouse ?? name, onHand);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    setSaving(true);
    try {
      const next = await api.put<Stock>(`/v1/inventory/${encodeURIComponent(sku)}`, { body: checked.body });
      onSaved(next, checked.body.warehouse, checked.body.on_hand);
      if (warehouse === null) {
        setName("");
        setOnHand("");
      }
    } catch (error) {
      if (error instanceof ApiError) {
        const fields: StockErrors = {};
        if (error.details.on_hand) fields.on_hand = sentence(error.details.on_hand);
        if (error.details.warehouse) fields.warehouse = sentence(error.details.warehouse);
        setErrors(fields);
      }
      setFailure(error);
    } finally {
      setSaving(false);
    }
  };

  const where = warehouse ?? "the warehouse";
  return (
    <form className="staff-inline-form" noValidate onSubmit={(event) => void submit(event)}>
      {warehouse === null ? (
        <Field label="Warehouse" error={errors.warehouse} hint="e.g. main or berlin-2">
          {(props) => (
            <input
              {...props}
              type="text"
              maxLength={32}
              autoCapitalize="none"
              spellCheck={false}
              value={name}
              onChange={(event) => setName(event.target.value.toLowerCase())}
            />
          )}
        </Field>
      ) : null}
      <Field label={warehouse === null ? "On hand" : `On hand in ${warehouse}`} error={errors.on_hand}>
        {(props) => (
          <input
            {...props}
            type="number"
            inputMode="numeric"
            min={0}
            step={1}
            value={onHand}
            onChange={(event) => setOnHand(event.target.value)}
          />
        )}
      </Field>
      <button
        type="submit"
        className="button secondary"
        disabled={saving}
        aria-busy={saving || undefined}
        aria-label={warehouse === null ? "Set stock" : `Save on hand in ${warehouse}`}
      >
        {saving ? "Saving…" : warehouse === null ? "Set stock" : "Save"}
      </button>
      {failure ? <StockFailure error={failure} where={where} /> : null}
    </form>
  );
}

function StockFailure({ error, where }: { error: unknown; where: string }) {
  let message = describeError(error).message;
  if (error instanceof ApiError && error.status === 409) {
    message = `Not saved: orders in progress have reserved more than that in ${where}. ${message}`;
  } else if (error instanceof ApiError && error.code === "unknown_sku") {
    message = "Not saved: no product has this SKU. Create the product first.";
  }
  return (
    <div className="alert" role="alert">
      <p>{message}</p>
    </div>
  );
}
