/**
 * PKCE (RFC 7636) and the OAuth2 `state`: what the authorization code flow
 * needs from the browser's crypto.
 *
 * The code verifier is 64 characters from the RFC's unreserved set
 * ([A-Z] [a-z] [0-9] "-" "." "_" "~"), drawn with crypto.getRandomValues
 * (rejection sampling, so every character is equally likely); the challenge is
 * BASE64URL(SHA-256(verifier)) without padding (method S256, the only one
 * Agora accepts).
 */

import { sha256 } from "./sha256";

export const VERIFIER_CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
export const VERIFIER_MIN_LENGTH = 43;
export const VERIFIER_MAX_LENGTH = 128;

/** Random characters from `charset`, uniformly, from crypto.getRandomValues. */
export function randomString(length: number, charset: string = VERIFIER_CHARSET): string {
  // The largest multiple of charset.length below 256: bytes above it are
  // redrawn, so no character is favoured (66 does not divide 256).
  const limit = 256 - (256 % charset.length);
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length - out.length + 8));
    for (const byte of bytes) {
      if (byte < limit && out.length < length) out += charset[byte % charset.length];
    }
  }
  return out;
}

/** A new code verifier (RFC 7636 4.1): 43 to 128 unreserved characters; 64 by default. */
export function createVerifier(length = 64): string {
  if (!Number.isInteger(length) || length < VERIFIER_MIN_LENGTH || length > VERIFIER_MAX_LENGTH) {
    throw new RangeError(`a code verifier has ${VERIFIER_MIN_LENGTH} to ${VERIFIER_MAX_LENGTH} characters`);
  }
  return randomString(length);
}

/** base64url without padding (RFC 4648 section 5). */
export function base64Url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * The S256 code challenge of a verifier: BASE64URL(SHA-256(ASCII(verifier))).
 * crypto.subtle where the page has it (secure contexts), else ./sha256.ts.
 */
export async function challengeS256(verifier: string, subtle: SubtleCrypto | undefined = globalThis.crypto?.subtle): Promise<string> {
  const bytes = new TextEncoder().encode(verifier);
  if (subtle) return base64Url(new Uint8Array(await subtle.digest("SHA-256", bytes)));
  return base64Url(sha256(bytes));
}

/** An unguessable `state` value (binds the callback to this browser's request). */
export function createState(): string {
  return randomString(32);
}
