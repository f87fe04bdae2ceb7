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
import { SKU_MESSAGE, SKU_PATTERN, validateStock, type StockErrors } from "./forms";

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
          <ErrorMessage
            error={results.error}
            title="Could not search the products."
            onRetry={results.reload}
          />
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
      <p className="muted">Or type a SKU:</p>
      <form className="staff-inline-form" noValidate onSubmit={submitSku}>
        <Field label="SKU" error={typedError}>
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
  const warehouses = stock.value?.warehouses ?? [];

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
      ) : warehouses.length === 0 ? (
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
              </tr>
            </thead>
            <tbody>
              {warehouses.map((row) => (
                <tr key={row.warehouse}>
                  <th scope="row">{row.warehouse}</th>
                  <td className="num">{row.on_hand}</td>
                  <td className="num">{row.reserved}</td>
                  <td className="num">{row.available}</td>
                </tr>
              ))}
            </tbody>
            {stock.value && warehouses.length > 1 ? (
              <tfoot>
                <tr>
                  <th scope="row">Total</th>
                  <td className="num">{stock.value.total.on_hand}</td>
                  <td className="num">{stock.value.total.reserved}</td>
                  <td className="num">{stock.value.total.available}</td>
                </tr>
              </tfoot>
            ) : null}
          </table>
        </div>
      )}
      {stock.value !== undefined ? <SetStockForm sku={sku} stock={stock.value} onSaved={saved} /> : null}
    </section>
  );
}

const NEW_WAREHOUSE = "";

/**
 * Sets on hand in one warehouse: one of the SKU's (the quantity starts at its
 * current on hand) or a new one (its name typed).
 */
function SetStockForm({
  sku,
  stock,
  onSaved,
}: {
  sku: string;
  stock: Stock | null;
  onSaved: (stock: Stock, warehouse: string, onHand: number) => void;
}) {
  const warehouses = stock?.warehouses ?? [];
  const [choice, setChoice] = useState(warehouses[0]?.warehouse ?? NEW_WAREHOUSE);
  const [name, setName] = useState("");
  const [onHand, setOnHand] = useState(warehouses[0] ? String(warehouses[0].on_hand) : "");
  const [errors, setErrors] = useState<StockErrors>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [saving, setSaving] = useState(false);
  const creating = choice === NEW_WAREHOUSE;
  const current = warehouses.find((row) => row.warehouse === choice);

  const choose = (value: string) => {
    setChoice(value);
    setErrors({});
    setFailure(null);
    const row = warehouses.find((w) => w.warehouse === value);
    setOnHand(row ? String(row.on_hand) : "");
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFailure(null);
    const checked = validateStock(creating ? name : choice, onHand);
    if (!checked.ok) {
      setErrors(checked.errors);
      return;
    }
    setErrors({});
    setSaving(true);
    try {
      const next = await api.put<Stock>(`/v1/inventory/${encodeURIComponent(sku)}`, { body: checked.body });
      onSaved(next, checked.body.warehouse, checked.body.on_hand);
      if (creating) {
        setName("");
        setChoice(checked.body.warehouse);
      }
    } catch (error) {
      if (error instanceof ApiError) {
        setErrors({ on_hand: error.details.on_hand, warehouse: error.details.warehouse });
      }
      setFailure(error);
    } finally {
      setSaving(false);
    }
  };

  return (
    <form
      className="staff-form"
      noValidate
      onSubmit={(event) => void submit(event)}
      aria-labelledby="set-stock-heading"
    >
      <h3 id="set-stock-heading">Set on hand</h3>
      <p className="muted">
        The quantity counted in the warehouse (not a change); it cannot go below what is reserved.
      </p>
      {warehouses.length > 0 ? (
        <Field label="Warehouse" error={creating ? undefined : errors.warehouse}>
          {(props) => (
            <select {...props} value={choice} onChange={(event) => choose(event.target.value)}>
              {warehouses.map((row) => (
                <option key={row.warehouse} value={row.warehouse}>
                  {row.warehouse}
                </option>
              ))}
              <option value={NEW_WAREHOUSE}>Another warehouse…</option>
            </select>
          )}
        </Field>
      ) : null}
      {creating ? (
        <Field
          label={warehouses.length > 0 ? "New warehouse" : "Warehouse"}
          error={errors.warehouse}
          hint="Lower case, e.g. main or berlin-2."
        >
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
      <Field
        label="On hand"
        error={errors.on_hand}
        hint={current ? `Now ${current.on_hand}, of which ${current.reserved} reserved.` : undefined}
      >
        {(props) => (
          <input
            {...props}
            type="number"
            inputMode="numeric"
            min={current?.reserved ?? 0}
            step={1}
            value={onHand}
            onChange={(event) => setOnHand(event.target.value)}
          />
        )}
      </Field>
      <button type="submit" className="button" disabled={saving} aria-busy={saving || undefined}>
        {saving ? "Saving…" : "Set stock"}
      </button>
      {failure ? <StockFailure error={failure} where={creating ? name || "that warehouse" : choice} /> : null}
    </form>
  );
}

function StockFailure({ error, where }: { error: unknown; where: string }) {
  let message = describeError(error).message;
  if (error instanceof ApiError && error.status === 409) {
    message = `Not saved: orders in progress have reserved stock in ${where}, and on hand cannot go below what is reserved.`;
  } else if (error instanceof ApiError && error.code === "unknown_sku") {
    message = "Not saved: no product has this SKU. Create the product first.";
  }
  return (
    <div className="alert" role="alert">
      <p>{message}</p>
    </div>
  );
}
