import { describe, expect, it } from "vitest";
import {
  VERIFIER_CHARSET,
  base64Url,
  challengeS256,
  createState,
  createVerifier,
  randomString,
} from "./pkce";

describe("PKCE (RFC 7636)", () => {
  it("matches the S256 example of RFC 7636 appendix B", async () => {
    const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    expect(await challengeS256(verifier)).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
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
