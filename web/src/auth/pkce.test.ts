import { describe, expect, it } from "vitest";
import {
  VERIFIER_CHARSET,
  base64Url,
  challengeS256,
  createState,
  createVerifier,
  randomString,
} from "./pkce";
import { sha256 } from "./sha256";

describe("PKCE (RFC 7636)", () => {
  it("matches the S256 example of RFC 7636 appendix B", async () => {
    const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    expect(await challengeS256(verifier)).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });

  it("matches appendix B without crypto.subtle too (plain http on another host)", async () => {
    const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    expect(await challengeS256(verifier, undefined)).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });

  it("has a SHA-256 that agrees with crypto.subtle (FIPS 180-4 vectors, block edges)", async () => {
    const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    expect(hex(sha256(new TextEncoder().encode("abc")))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(hex(sha256(new Uint8Array()))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    for (const length of [55, 56, 63, 64, 65, 119, 128, 1000]) {
      const data = crypto.getRandomValues(new Uint8Array(length));
      const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
      expect(hex(sha256(data))).toBe(hex(expected));
    }
  });

  it("creates verifiers of 43 to 128 unreserved characters", () => {
    const allowed = new RegExp(`^[${VERIFIER_CHARSET.replace(/[-\]\\^]/g, "\\$&")}]+$`);
    for (const length of [43, 64, 128]) {
      const verifier = createVerifier(length);
      expect(verifier).toHaveLength(length);
      expect(verifier).toMatch(allowed);
      expect(verifier).toMatch(/^[A-Za-z0-9\-._~]+$/);
    }
    expect(createVerifier()).toHaveLength(64);
  });

  it("refuses verifier lengths outside the RFC's bounds", () => {
    expect(() => createVerifier(42)).toThrow(RangeError);
    expect(() => createVerifier(129)).toThrow(RangeError);
  });

  it("draws a different verifier and state every time", () => {
    const verifiers = new Set(Array.from({ length: 50 }, () => createVerifier()));
    expect(verifiers.size).toBe(50);
    expect(createState()).not.toBe(createState());
  });

  it("uses every character of the set over many draws (no bias leaves one out)", () => {
    const seen = new Set(randomString(20_000));
    expect(seen.size).toBe(VERIFIER_CHARSET.length);
  });

  it("encodes base64url without padding", () => {
    expect(base64Url(new Uint8Array([0xfb, 0xff]))).toBe("-_8");
    expect(base64Url(new Uint8Array([]))).toBe("");
  });
});
