/**
 * A product's image, or a placeholder when it has none (`images` empty or
 * absent). `size` picks the rendition: "list" (catalog) or "detail" (product page).
 */

import type { Product } from "../api/types";

export function ProductImage({
  product,
  size,
  alt,
}: {
  product: Pick<Product, "name" | "images">;
  size: "list" | "detail";
  /** The text alternative; "" when the product's name is next to the image. */
  alt: string;
}) {
  const image = product.images?.[0];
  const url = image?.urls?.[size];
  if (!image || !url) {
    return (
      <div className="placeholder-image" role={alt ? "img" : undefined} aria-label={alt ? `${alt}: no image yet` : undefined} aria-hidden={alt ? undefined : true}>
        <span>No image</span>
      </div>
    );
  }
  return (
    <img
      className={size === "list" ? "thumb" : "detail-image"}
      src={url}
      alt={alt}
      width={image.width}
      height={image.height}
      loading={size === "list" ? "lazy" : "eager"}
      decoding="async"
    />
  );
}
