/**
 * `/`: the catalog. Search (`?q=`, kept in the URL so a reload or a shared
 * link shows the same results) and cursor pages (`next_cursor`; "Previous
 * page" from a stack of passed cursors). Each product is an `<article>` whose
 * heading links to its page.
 */

import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useSearchParams } from "react-router";
import { api } from "../api/client";
import type { Page, Product } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { Pagination, useCursorPages } from "../components/Pagination";
import { ProductImage } from "../components/ProductImage";
import { formatMoney } from "../lib/format";
import { useApi } from "../lib/useApi";
import { usePageTitle } from "../lib/usePageTitle";

// Eight per page: two rows of four on a wide screen (the demo data fills two pages).
export const CATALOG_PAGE_SIZE = 8;

export function CatalogPage() {
  const [params, setParams] = useSearchParams();
  const q = params.get("q") ?? "";
  usePageTitle(q ? `Search: ${q}` : "Catalog");
  const [text, setText] = useState(q);
  const pages = useCursorPages();
  const headingRef = useRef<HTMLHeadingElement>(null);

  // A new search starts at its first page.
  const { reset } = pages;
  useEffect(() => {
    setText(q);
    reset();
  }, [q, reset]);

  const products = useApi(
    (signal) =>
      api.get<Page<Product>>("/v1/products", {
        query: { q: q || undefined, cursor: pages.cursor, limit: CATALOG_PAGE_SIZE },
        signal,
      }),
    [q, pages.cursor],
  );

  function onSearch(event: FormEvent) {
    event.preventDefault();
    const next = new URLSearchParams(params);
    if (text.trim()) next.set("q", text.trim());
    else next.delete("q");
    setParams(next);
  }

  // While a search or page loads, the previous results are not shown (no
  // stale list to click into).
  const items = products.loading ? [] : (products.value?.items ?? []);
  return (
    <section aria-labelledby="catalog-heading">
      <h1 id="catalog-heading" ref={headingRef} tabIndex={-1}>
        {q ? `Results for “${q}”` : "Catalog"}
      </h1>
      <form className="search" role="search" onSubmit={onSearch}>
        <label htmlFor="catalog-search" className="visually-hidden">
          Search products
        </label>
        <input
          id="catalog-search"
          className="input"
          type="search"
          name="q"
          value={text}
          maxLength={200}
          placeholder="Search products"
          onChange={(event) => setText(event.target.value)}
        />
        <button type="submit" className="button">
          Search
        </button>
      </form>

      {products.error ? (
        <ErrorMessage error={products.error} title="Could not load the catalog." onRetry={products.reload} />
      ) : null}
      {products.loading ? <Loading label="Loading products…" /> : null}
      {!products.loading && !products.error && items.length === 0 ? (
        <p role="status">{q ? `No products match “${q}”.` : "There are no products yet."}</p>
      ) : null}

      {items.length > 0 ? (
        <ul className="grid" aria-label="Products">
          {items.map((product) => (
            <li key={product.id}>
              <article className="card product-card" aria-labelledby={`product-${product.id}`}>
                <ProductImage product={product} size="list" alt="" />
                <h2 id={`product-${product.id}`}>
                  <Link to={`/products/${product.id}`}>{product.name}</Link>
                </h2>
                <p className="price">{formatMoney(product.price)}</p>
                {product.description ? <p className="muted">{truncate(product.description, 120)}</p> : null}
              </article>
            </li>
          ))}
        </ul>
      ) : null}

      <Pagination
        pages={pages}
        nextCursor={products.value?.next_cursor}
        label="Catalog pages"
        onChange={() => headingRef.current?.focus()}
      />
    </section>
  );
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1).trimEnd()}…`;
}
