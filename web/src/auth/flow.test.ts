import { afterEach, describe, expect, it } from "vitest";
import { authorizeUrl, safeReturnPath, scopesToRequest, takeCallback, type PendingSignIn } from "./flow";

const pending: PendingSignIn = {
  state: "state-123",
  verifier: "v".repeat(64),
  redirectUri: "http://app.test/auth/callback",
  returnTo: "/cart",
};

afterEach(() => sessionStorage.clear());

describe("the authorization request", () => {
  it("asks for a code with PKCE S256, the state and the redirect URI", () => {
    const url = new URL(authorizeUrl("http://gw.test", "agora-web", pending, "challenge", ["profile", "orders:read"]));
    expect(url.origin + url.pathname).toBe("http://gw.test/oauth/authorize");
    expect(Object.fromEntries(url.searchParams)).toEqual({
      response_type: "code",
      client_id: "agora-web",
      redirect_uri: "http://app.test/auth/callback",
      scope: "profile orders:read",
      state: "state-123",
      code_challenge: "challenge",
      code_challenge_method: "S256",
    });
  });

  it("asks only for scopes the server publishes", () => {
    expect(scopesToRequest(["profile", "orders:read", "orders:write", "catalog:write"])).toEqual([
      "profile",
      "orders:read",
      "orders:write",
      "catalog:write",
    ]);
    expect(scopesToRequest(null)).not.toContain("ops:write");
    expect(scopesToRequest(null)).toContain("profile");
  });
});

describe("the callback", () => {
  it("answers the pending request's code when the state matches, once", () => {
    sessionStorage.setItem("agora.auth.pending", JSON.stringify(pending));
    expect(takeCallback("?code=abc&state=state-123")).toEqual({ pending, code: "abc" });
    expect(() => takeCallback("?code=abc&state=state-123")).toThrow(/expired or was already used/);
  });

  it("refuses a state that does not match", () => {
    sessionStorage.setItem("agora.auth.pending", JSON.stringify(pending));
    expect(() => takeCallback("?code=abc&state=forged")).toThrow(expect.objectContaining({ code: "state_mismatch" }));
    expect(sessionStorage.getItem("agora.auth.pending")).toBeNull();
  });

  it("reports an error answer (e.g. the user denied)", () => {
    sessionStorage.setItem("agora.auth.pending", JSON.stringify(pending));
    expect(() => takeCallback("?error=access_denied&state=state-123")).toThrow("Sign-in was cancelled.");
  });

  it("returns only to paths inside the app", () => {
    expect(safeReturnPath("/orders/1")).toBe("/orders/1");
    expect(safeReturnPath("https://evil.test/")).toBe("/");
    expect(safeReturnPath("//evil.test/")).toBe("/");
    expect(safeReturnPath("/auth/callback?code=x")).toBe("/");
  });
});
