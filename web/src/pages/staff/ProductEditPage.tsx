/**
 * /staff/products/new and /staff/products/:id (catalog:write).
 *
 * The form (fields "Name", "SKU", "Description", "Price", "Currency"; button
 * "Save") takes the price as a decimal and sends minor units; it checks what
 * the API would first and shows the API's own field errors beside their
 * fields too. An edit PATCHes only what changed; the SKU cannot change.
 * "Deactivate"/"Activate" PATCH `active`. The images: each shown with a
 * "Delete image N" (asks first), and `<input type="file">` "Upload image",
 * which POSTs the file's bytes with its content type.
 */

import { useEffect, useRef, useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router";
import { api, ApiError } from "../../api/client";
import { useAuth } from "../../auth";
import { describeError } from "../../api/errors";
import type { Product } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Field } from "../../components/Field";
import { Loading } from "../../components/Loading";
import { formatDate, formatMoney } from "../../lib/format";
import { useApi } from "../../lib/useApi";
import { ConfirmAction, Notice, RequireScope, StaffPage, StatusBadge } from "./common";
import {
  productChanges,
  productFieldErrors,
  productFormValues,
  validateProduct,
  type ProductErrors,
  type ProductFormValues,
} from "./forms";
import { IMAGE_TYPES, formatBytes, uploadErrorMessage } from "./upload";

const BACK = { to: "/staff/products", label: "Products" };

export function ProductNewPage() {
  const navigate = useNavigate();
  return (
    <RequireScope scope="catalog:write" title="New product">
      <StaffPage title="New product" back={BACK}>
        <ProductForm
          product={null}
          onSaved={(product) =>
            navigate(`/staff/products/${product.id}`, {
              state: { notice: `Product “${product.name}” created.` },
            })
          }
        />
      </StaffPage>
    </RequireScope>
  );
}

export function ProductEditPage() {
  return (
    <RequireScope scope="catalog:write" title="Product">
      <ProductEditor />
    </RequireScope>
  );
}

function ProductEditor() {
  const auth = useAuth();
  const { id = "" } = useParams();
  const location = useLocation();
  const [notice, setNotice] = useState<string | null>(
    (location.state as { notice?: string } | null)?.notice ?? null,
  );
  const product = useApi(
    (signal) => api.get<Product>(`/v1/products/${encodeURIComponent(id)}`, { signal }),
    [id],
  );
  const [activeError, setActiveError] = useState<unknown>(null);
  const [switching, setSwitching] = useState(false);

  if (!product.value) {
    return (
      <StaffPage title="Product" back={BACK}>
        {product.error ? (
          <ErrorMessage error={product.error} title="Could not load the product." onRetry={product.reload} />
        ) : (
          <Loading label="Loading the product…" />
        )}
      </StaffPage>
    );
  }
  const current = product.value;

  const setActive = async (active: boolean) => {
    setSwitching(true);
    setActiveError(null);
    try {
      const updated = await api.patch<Product>(`/v1/products/${current.id}`, { body: { active } });
      product.setValue(updated);
      setNotice(
        active
          ? "The product is active: customers can see and buy it."
          : "The product is deactivated: customers no longer see it.",
      );
    } catch (error) {
      setActiveError(error);
    } finally {
      setSwitching(false);
    }
  };

  return (
    <StaffPage title={current.name} back={BACK}>
      <Notice message={notice} />
      <div className="card">
        <dl className="staff-details">
          <dt>Status</dt>
          <dd>
            <StatusBadge status={current.active ? "active" : "inactive"} />
          </dd>
          <dt>Price</dt>
          <dd>{formatMoney(current.price)}</dd>
          <dt>Created</dt>
          <dd>{formatDate(current.created_at)}</dd>
          <dt>Updated</dt>
          <dd>{formatDate(current.updated_at)}</dd>
        </dl>
        <div className="row">
          <button
            type="button"
            className={current.active ? "button secondary" : "button"}
            disabled={switching}
            aria-busy={switching || undefined}
            onClick={() => void setActive(!current.active)}
          >
            {current.active ? "Deactivate" : "Activate"}
          </button>
          {current.active ? (
            <Link to={`/products/${current.id}`}>View in the store</Link>
          ) : (
            <span className="muted">Inactive products are hidden from customers.</span>
          )}
          {auth.hasScope("inventory:write") ? (
            <Link to={`/staff/stock?sku=${encodeURIComponent(current.sku)}`}>Stock of {current.sku}</Link>
          ) : null}
        </div>
        <ErrorMessage error={activeError} title="Could not change the status." />
      </div>

      <section className="card" aria-labelledby="product-details-heading">
        <h2 id="product-details-heading">Details</h2>
        <ProductForm
          key={current.id}
          product={current}
          onSaved={(updated, message) => {
            product.setValue(updated);
            setNotice(message);
          }}
          onNothingChanged={() => setNotice("Nothing changed.")}
        />
      </section>

      <ImagesSection
        product={current}
        onChange={(updated, message) => {
          product.setValue(updated);
          setNotice(message);
        }}
      />
    </StaffPage>
  );
}

function ProductForm({
  product,
  onSaved,
  onNothingChanged,
}: {
  product: Product | null;
  onSaved: (product: Product, message: string) => void;
  onNothingChanged?: () => void;
}) {
  const creating = product === null;
  const [values, setValues] = useState<ProductFormValues>(() => productFormValues(product));
  const [errors, setErrors] = useState<ProductErrors>({});
  const [failure, setFailure] = useState<unknown>(null);
  const [otherProblems, setOtherProblems] = useState<string[]>([]);
  const [saving, setSaving] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const [focusTick, setFocusTick] = useState(0);

  // After a failed submit, focus the first field in error (its message is tied to it).
  useEffect(() => {
    if (focusTick === 0) return;
    formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
  }, [focusTick]);

  const set = (field: keyof ProductFormValues) => (value: string) => {
    setValues((v) => ({ ...v, [field]: value }));
    if (errors[field]) setErrors((e) => ({ ...e, [field]: undefined }));
  };

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setFailure(null);
    setOtherProblems([]);
    const checked = validateProduct(values, creating);
    if (!checked.ok) {
      setErrors(checked.errors);
      setFocusTick((n) => n + 1);
      return;
    }
    setErrors({});
    setSaving(true);
    try {
      if (creating) {
        const created = await api.post<Product>("/v1/products", { body: checked.body });
        onSaved(created, `Product “${created.name}” created.`);
      } else {
        const changes = productChanges(product, checked.body);
        if (!changes) {
          onNothingChanged?.();
          return;
        }
        const updated = await api.patch<Product>(`/v1/products/${product.id}`, { body: changes });
        setValues(productFormValues(updated));
        onSaved(updated, "Changes saved.");
      }
    } catch (error) {
      if (error instanceof ApiError && Object.keys(error.details).length > 0) {
        const { fields, other } = productFieldErrors(error.details);
        setErrors(fields);
        setOtherProblems(other);
        setFocusTick((n) => n + 1);
      }
      setFailure(error);
    } finally {
      setSaving(false);
    }
  };

  const digitsHint =
    values.currency.trim().toUpperCase() === "JPY" ? "A whole number, e.g. 1200." : "A decimal, e.g. 12.50.";

  return (
    <form ref={formRef} className="staff-form" noValidate onSubmit={(event) => void submit(event)}>
      {failure ? <FormFailure error={failure} other={otherProblems} /> : null}
      <Field label="Name" error={errors.name}>
        {(props) => (
          <input
            {...props}
            type="text"
            required
            maxLength={200}
            value={values.name}
            onChange={(e) => set("name")(e.target.value)}
          />
        )}
      </Field>
      <Field
        label="SKU"
        error={errors.sku}
        hint={
          creating ? "Upper-case letters, digits and '-'; it cannot change later." : "The SKU cannot change."
        }
      >
        {(props) => (
          <input
            {...props}
            type="text"
            required={creating}
            readOnly={!creating}
            maxLength={64}
            autoCapitalize="characters"
            spellCheck={false}
            value={values.sku}
            onChange={(e) => set("sku")(e.target.value.toUpperCase())}
          />
        )}
      </Field>
      <Field label="Description" error={errors.description}>
        {(props) => (
          <textarea
            {...props}
            maxLength={5000}
            value={values.description}
            onChange={(e) => set("description")(e.target.value)}
          />
        )}
      </Field>
      <div className="row">
        <Field label="Price" error={errors.price} hint={digitsHint}>
          {(props) => (
            <input
              {...props}
              type="text"
              inputMode="decimal"
              required
              autoComplete="off"
              value={values.price}
              onChange={(e) => set("price")(e.target.value)}
            />
          )}
        </Field>
        <Field label="Currency" error={errors.currency} hint="ISO 4217, e.g. EUR.">
          {(props) => (
            <input
              {...props}
              type="text"
              required
              minLength={3}
              maxLength={3}
              autoCapitalize="characters"
              spellCheck={false}
              value={values.currency}
              onChange={(e) => set("currency")(e.target.value.toUpperCase())}
            />
          )}
        </Field>
      </div>
      <button type="submit" className="button" disabled={saving} aria-busy={saving || undefined}>
        {saving ? "Saving…" : "Save"}
      </button>
    </form>
  );
}

function FormFailure({ error, other }: { error: unknown; other: string[] }) {
  const { message } = describeError(error);
  return (
    <div className="alert" role="alert">
      <p>
        <strong>Not saved. </strong>
        {error instanceof ApiError && error.code === "conflict" && error.details.sku
          ? "A product with this SKU already exists."
          : message}
      </p>
      {other.length > 0 ? (
        <ul>
          {other.map((problem) => (
            <li key={problem}>{problem}</li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function ImagesSection({
  product,
  onChange,
}: {
  product: Product;
  onChange: (product: Product, message: string) => void;
}) {
  const images = product.images ?? [];
  const inputRef = useRef<HTMLInputElement>(null);
  const [uploading, setUploading] = useState<File | null>(null);
  const [error, setError] = useState<string | null>(null);

  const upload = async (file: File) => {
    setError(null);
    setUploading(file);
    try {
      const updated = await api.upload<Product>(`/v1/products/${product.id}/images`, file);
      onChange(updated, `Image “${file.name}” uploaded.`);
    } catch (failure) {
      setError(uploadErrorMessage(failure));
    } finally {
      setUploading(null);
      if (inputRef.current) inputRef.current.value = "";
    }
  };

  const remove = async (imageId: string, position: number) => {
    setError(null);
    try {
      await api.delete(`/v1/products/${product.id}/images/${encodeURIComponent(imageId)}`);
      onChange(
        { ...product, images: images.filter((image) => image.id !== imageId) },
        `Image ${position} deleted.`,
      );
    } catch (failure) {
      setError(`Image ${position} was not deleted. ${describeError(failure).message}`);
    }
  };

  return (
    <section className="card" aria-labelledby="product-images-heading">
      <h2 id="product-images-heading">Images</h2>
      {images.length === 0 ? (
        <p className="muted">No images yet. The first image uploaded is the product's main image.</p>
      ) : (
        <ul className="staff-images" aria-label="Images of this product">
          {images.map((image, index) => (
            <li key={image.id}>
              <figure>
                <img
                  src={image.urls.list}
                  alt={`${product.name}, image ${index + 1}`}
                  width={image.width}
                  height={image.height}
                  loading="lazy"
                />
                <figcaption className="muted">
                  {index === 0 ? "Main image, " : ""}
                  {image.width}×{image.height}
                </figcaption>
                <ConfirmAction
                  label={`Delete image ${index + 1}`}
                  confirmLabel="Delete image"
                  question={`Delete image ${index + 1} of ${product.name}?`}
                  danger
                  onConfirm={() => remove(image.id, index + 1)}
                />
              </figure>
            </li>
          ))}
        </ul>
      )}
      <div className="field">
        <label htmlFor="staff-image-upload">Upload image</label>
        <input
          ref={inputRef}
          id="staff-image-upload"
          type="file"
          accept={IMAGE_TYPES.join(",")}
          disabled={uploading !== null}
          aria-describedby="staff-image-upload-hint"
          onChange={(event) => {
            const file = event.target.files?.[0];
            if (file) void upload(file);
          }}
        />
        <span className="hint" id="staff-image-upload-hint">
          JPEG, PNG or WebP. Uploading starts as soon as a file is chosen.
        </span>
      </div>
      {uploading ? (
        <p role="status" aria-live="polite" aria-busy="true" className="muted">
          <span className="spinner" aria-hidden="true" /> Uploading “{uploading.name}” (
          {formatBytes(uploading.size)})…
        </p>
      ) : null}
      {error ? (
        <div className="alert" role="alert">
          <p>{error}</p>
        </div>
      ) : null}
    </section>
  );
}
