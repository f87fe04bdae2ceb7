/**
 * /staff/products (catalog:write): every product, inactive ones included
 * (`GET /v1/products?include_inactive=true` with the token), in the API's
 * order, by cursor pages, with a search; each links to its edit page.
 */

import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { api } from "../../api/client";
import type { Page, Product } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { Pagination, useCursorPages } from "../../components/Pagination";
import { formatDate, formatMoney } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { RequireScope, StaffPage, StatusBadge } from "./common";

export const PAGE_SIZE = 20;

export function ProductsPage() {
  return (
    <RequireScope scope="catalog:write" title="Products">
      <ProductList />
    </RequireScope>
  );
}

function ProductList() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  const [draft, setDraft] = useState(q);
  const pages = useCursorPages();
  const page = useApi(
    (signal) =>
      api.get<Page<Product>>("/v1/products", {
        query: { include_inactive: true, q, cursor: pages.cursor, limit: PAGE_SIZE },
        signal,
      }),
    [q, pages.cursor],
  );

  return (
    <StaffPage
      title="Products"
      actions={
        <Link className="button" to="/staff/products/new">
          New product
        </Link>
      }
    >
      <form
        className="search"
        role="search"
        aria-label="Products"
        onSubmit={(event) => {
          event.preventDefault();
          pages.reset();
          const next = draft.trim();
          setParams(next ? { q: next } : {});
        }}
      >
        <label htmlFor="staff-product-search" className="visually-hidden">
          Search products
        </label>
        <input
          id="staff-product-search"
          className="input"
          type="search"
          value={draft}
          maxLength={100}
          placeholder="Name or SKU"
          onChange={(event) => setDraft(event.target.value)}
        />
        <button type="submit" className="button">
          Search
        </button>
      </form>

      {page.error ? (
        <ErrorMessage error={page.error} title="Could not load the products." onRetry={page.reload} />
      ) : null}
      {page.loading && !page.value ? <Loading label="Loading products…" /> : null}
      {page.value ? (
        page.value.items.length === 0 ? (
          <p>{q ? `No product matches “${q}”.` : "There are no products yet."}</p>
        ) : (
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Products table">
            <table className="wide">
              <caption>
                Products{q ? ` matching “${q}”` : ""}
                {page.loading ? <span className="muted"> (updating…)</span> : null}
              </caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">SKU</th>
                  <th scope="col" className="num">
                    Price
                  </th>
                  <th scope="col">Status</th>
                  <th scope="col" className="num">
                    Images
                  </th>
                  <th scope="col">Updated</th>
                </tr>
              </thead>
              <tbody>
                {page.value.items.map((product) => (
                  <tr key={product.id}>
                    <th scope="row">
                      <Link to={`/staff/products/${product.id}`}>{product.name}</Link>
                    </th>
                    <td>
                      <code>{product.sku}</code>
                    </td>
                    <td className="num">{formatMoney(product.price)}</td>
                    <td>
                      <StatusBadge status={product.active ? "active" : "inactive"} />
                    </td>
                    <td className="num">{product.images?.length ?? 0}</td>
                    <td>{formatDate(product.updated_at)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )
      ) : null}
      <Pagination pages={pages} nextCursor={page.value?.next_cursor} label="Product pages" />
    </StaffPage>
  );
}
