/**
 * `/products/:id`: the product (name as the h1, price, description, its first
 * image at the detail size), live availability (`GET /v1/inventory/<sku>`,
 * refreshed every 10 s while the page is visible), a "Quantity" spinbutton and
 * "Add to cart".
 */

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { ApiError, api } from "../api/client";
import type { Product, Stock } from "../api/types";
import { useCart } from "../cart/CartContext";
import { MAX_LINE_QUANTITY } from "../cart/cart";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import { ProductImage } from "../components/ProductImage";
import { availabilityText } from "../lib/availability";
import { formatMoney } from "../lib/format";
import { useApi } from "../lib/useApi";
import { usePolling } from "../lib/usePolling";
import { usePageTitle } from "../lib/usePageTitle";

export const AVAILABILITY_REFRESH_MS = 10_000;

export function ProductPage() {
  const { id = "" } = useParams();
  const product = useApi((signal) => api.get<Product>(`/v1/products/${encodeURIComponent(id)}`, { signal }), [id]);
  usePageTitle(product.value?.name ?? "Product");

  if (product.error) {
    const notFound = product.error instanceof ApiError && product.error.status === 404;
    return (
      <section>
        <h1>{notFound ? "Product not found" : "Product"}</h1>
        {notFound ? (
          <p>This product does not exist or is no longer sold.</p>
        ) : (
          <ErrorMessage error={product.error} title="Could not load this product." onRetry={product.reload} />
        )}
        <p>
          <Link to="/">Browse all products</Link>
        </p>
      </section>
    );
  }
  if (!product.value) return <Loading label="Loading the product…" />;
  return <ProductDetail product={product.value} />;
}

function ProductDetail({ product }: { product: Product }) {
  const { dispatch } = useCart();
  const [quantity, setQuantity] = useState("1");
  const [added, setAdded] = useState<string | null>(null);
  const [available, setAvailable] = useState<number | null>(null);
  const [stockError, setStockError] = useState(false);

  const loadStock = useCallback(() => {
    api
      .get<Stock>(`/v1/inventory/${encodeURIComponent(product.sku)}`, { retry: { maxAttempts: 2 } })
      .then((stock) => {
        setAvailable(stock.total.available);
        setStockError(false);
      })
      .catch((error: unknown) => {
        if (error instanceof ApiError && error.status === 404) {
          // No stock recorded for this SKU anywhere: nothing to sell.
          setAvailable(0);
          setStockError(false);
        } else {
          setStockError(true);
        }
      });
  }, [product.sku]);

  useEffect(() => {
    setAvailable(null);
    loadStock();
  }, [loadStock]);
  usePolling(loadStock, AVAILABILITY_REFRESH_MS);

  const max = Math.max(1, Math.min(MAX_LINE_QUANTITY, available ?? MAX_LINE_QUANTITY));
  const parsed = Number(quantity);
  const quantityValid = Number.isInteger(parsed) && parsed >= 1 && parsed <= max;
  const soldOut = available !== null && available <= 0;

  function onAdd(event: FormEvent) {
    event.preventDefault();
    if (!quantityValid || soldOut) return;
    dispatch({
      type: "add",
      line: {
        productId: product.id,
        sku: product.sku,
        name: product.name,
        unitPrice: product.price,
        imageUrl: product.images?.[0]?.urls?.list ?? null,
      },
      quantity: parsed,
    });
    setAdded(`Added ${parsed} × ${product.name} to your cart.`);
  }

  return (
    <article className="product-detail">
      <div>
        <ProductImage product={product} size="detail" alt={product.name} />
      </div>
      <div className="stack">
        <h1>{product.name}</h1>
        <p className="price">{formatMoney(product.price)}</p>
        <p role="status" aria-label="Availability" className={soldOut ? "badge bad" : "badge ok"}>
          {available === null && !stockError ? "Checking availability…" : availabilityText(stockError && available === null ? null : available)}
        </p>
        {!product.active ? <p className="alert">This product is no longer sold.</p> : null}
        {product.description ? <p>{product.description}</p> : null}
        <p className="muted">
          SKU <span className="mono">{product.sku}</span>
        </p>
        <form onSubmit={onAdd} className="row">
          <div className="field">
            <label htmlFor="quantity">Quantity</label>
            <input
              id="quantity"
              type="number"
              inputMode="numeric"
              min={1}
              max={max}
              step={1}
              value={quantity}
              aria-invalid={quantityValid ? undefined : true}
              aria-describedby={quantityValid ? undefined : "quantity-error"}
              onChange={(event) => setQuantity(event.target.value)}
            />
            {!quantityValid ? (
              <p className="field-error" id="quantity-error">
                Choose a quantity from 1 to {max}.
              </p>
            ) : null}
          </div>
          <button type="submit" className="button" disabled={soldOut || !product.active}>
            Add to cart
          </button>
        </form>
        <p role="status" aria-live="polite">
          {added}
        </p>
      </div>
    </article>
  );
}
