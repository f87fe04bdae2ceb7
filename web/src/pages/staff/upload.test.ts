import { describe, expect, it } from "vitest";
import { ApiError, NetworkError } from "../../api/errors";
import { formatBytes, uploadErrorMessage } from "./upload";

describe("formatBytes", () => {
  it.each([
    [1, "1 byte"],
    [512, "512 bytes"],
    [1536, "1.5 KiB"],
    [5 * 1024 * 1024, "5 MiB"],
    [1024 * 1024 * 1024 * 3, "3 GiB"],
  ])("%i -> %s", (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe("uploadErrorMessage", () => {
  it("says the limit of a 413", () => {
    const error = new ApiError(413, "image_too_large", "the image is larger than 5242880 bytes", {
      max_bytes: 5242880,
    });
    expect(uploadErrorMessage(error)).toBe("That image is too large: the limit is 5 MiB.");
  });

  it("names the refused type of a 415", () => {
    const error = new ApiError(415, "unsupported_media_type", "send a JPEG...", {
      content_type: "image/gif",
    });
    expect(uploadErrorMessage(error)).toBe(
      "That file type is not supported (image/gif): upload a JPEG, PNG or WebP image.",
    );
  });

  it("gives the problem of a 422", () => {
    const error = new ApiError(422, "invalid_image", "the image cannot be used", {
      image: "more than 40000000 pixels",
    });
    expect(uploadErrorMessage(error)).toBe("That image cannot be used: more than 40000000 pixels.");
    expect(uploadErrorMessage(new ApiError(422, "invalid_image", "x"))).toBe("That image cannot be used.");
  });

  it("falls back on the app's messages", () => {
    expect(uploadErrorMessage(new NetworkError())).toMatch(/connection/);
    expect(uploadErrorMessage(new ApiError(404, "not_found", "product not found"))).toMatch(/could not find/);
  });
});
