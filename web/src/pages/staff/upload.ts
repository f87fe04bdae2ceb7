/**
 * Image uploads in words: the file types the API takes, sizes for people, and
 * the API's 413/415/422 answers (media API: image_too_large with
 * `details.max_bytes`, unsupported_media_type with `details.content_type`,
 * invalid_image with `details.image`) as one sentence each.
 */

import { ApiError, describeError } from "../../api/errors";

/** What `<input type="file" accept>` offers and the API takes. */
export const IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp"] as const;

/** 512 -> "512 bytes", 1536 -> "1.5 KiB", 5242880 -> "5 MiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  const units = ["KiB", "MiB", "GiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text} ${units[unit]}`;
}

/** The sentence shown when an upload failed. */
export function uploadErrorMessage(error: unknown): string {
  if (error instanceof ApiError) {
    const details = (error.rawDetails ?? {}) as Record<string, unknown>;
    if (error.code === "image_too_large" || error.status === 413) {
      const max = typeof details.max_bytes === "number" ? details.max_bytes : null;
      return max !== null
        ? `That image is too large: the limit is ${formatBytes(max)}.`
        : "That image is too large.";
    }
    if (error.code === "unsupported_media_type" || error.status === 415) {
      const type = typeof details.content_type === "string" ? ` (${details.content_type})` : "";
      return `That file type is not supported${type}: upload a JPEG, PNG or WebP image.`;
    }
    if (error.code === "invalid_image") {
      const problem = typeof details.image === "string" ? details.image : null;
      return problem ? `That image cannot be used: ${problem}.` : "That image cannot be used.";
    }
  }
  return describeError(error).message;
}
