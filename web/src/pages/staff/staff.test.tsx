import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { MemoryRouter } from "react-router";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { api } from "../../api/client";
import { session } from "../../auth";
import { ConfirmAction, RequireScope } from "./common";
import { ProductsPage } from "./ProductsPage";
import { StaffIndexPage } from "./StaffIndexPage";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;
let apiCalls: string[];
const realApiFetch = api.deps.fetch;
const realSessionFetch = session.deps.fetch;

/** Signs the app's session in with `scopes`, as the token endpoint would answer. */
async function signInWith(scopes: string[]) {
  session.deps.fetch = async () =>
    new Response(
      JSON.stringify({
        access_token: "header.payload.sig",
        token_type: "Bearer",
        expires_in: 300,
        scope: scopes.join(" "),
      }),
      { status: 200, headers: { "Content-Type": "application/json" } },
    );
  await act(() => session.exchangeCode("code", "verifier", "http://localhost/auth/callback"));
}

beforeEach(() => {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
  apiCalls = [];
  api.deps.fetch = async (input) => {
    apiCalls.push(String(input));
    return new Response(JSON.stringify({ items: [], next_cursor: null }), {
      status: 200,
      headers: { "Content-Type": "application/json" },
    });
  };
});

afterEach(async () => {
  act(() => root.unmount());
  container.remove();
  session.deps.fetch = async () => new Response(null, { status: 200 });
  await session.signOut();
  session.deps.fetch = realSessionFetch;
  api.deps.fetch = realApiFetch;
});

function render(node: React.ReactNode, path = "/staff") {
  act(() => root.render(<MemoryRouter initialEntries={[path]}>{node}</MemoryRouter>));
}

describe("scope gating", () => {
  it("says which permission is missing and renders nothing of the page", async () => {
    await signInWith(["profile", "ops:read"]);
    render(
      <RequireScope scope="billing:admin" title="Payments">
        <p>secret</p>
      </RequireScope>,
    );
    expect(container.querySelector("h1")?.textContent).toBe("Payments");
    expect(container.querySelector('[role="alert"]')?.textContent).toContain(
      "You need the billing:admin permission",
    );
    expect(container.textContent).not.toContain("secret");
  });

  it("renders the page with the scope", async () => {
    await signInWith(["billing:admin"]);
    render(
      <RequireScope scope="billing:admin" title="Payments">
        <p>secret</p>
      </RequireScope>,
    );
    expect(container.textContent).toContain("secret");
    expect(container.querySelector('[role="alert"]')).toBeNull();
  });

  it("calls no API on a page whose scope is missing", async () => {
    await signInWith(["ops:read"]);
    render(<ProductsPage />, "/staff/products");
    await act(async () => undefined);
    expect(container.textContent).toContain("You need the catalog:write permission");
    expect(apiCalls).toEqual([]);
  });

  it("lists staff products, inactive ones included, with the scope", async () => {
    await signInWith(["catalog:write"]);
    render(<ProductsPage />, "/staff/products");
    await act(async () => undefined);
    expect(apiCalls).toHaveLength(1);
    expect(apiCalls[0]).toContain("/v1/products?include_inactive=true");
    expect(container.textContent).toContain("There are no products yet.");
  });

  it("shows only the sections the scopes allow on the index", async () => {
    await signInWith(["inventory:write", "ops:read"]);
    render(<StaffIndexPage />);
    const links = [...container.querySelectorAll("a")].map((a) => a.textContent);
    expect(links).toEqual(["Stock", "Dead letters", "Services"]);
    expect(container.textContent).toContain("2 more sections need a permission");
    expect(document.title).toBe("Back office · Agora");
  });
});

describe("ConfirmAction", () => {
  it("asks before acting, and Cancel acts not", async () => {
    let done = 0;
    render(
      <ConfirmAction
        label="Discard"
        ariaLabel="Discard orders.payment_requested 1234abcd"
        confirmLabel="Confirm discard"
        question="Discard it for good?"
        onConfirm={async () => {
          done += 1;
        }}
      />,
    );
    const opener = container.querySelector("button")!;
    expect(opener.getAttribute("aria-label")).toBe("Discard orders.payment_requested 1234abcd");
    act(() => opener.click());
    expect(container.textContent).toContain("Discard it for good?");
    const [confirm, cancel] = [...container.querySelectorAll("button")];
    expect(document.activeElement).toBe(confirm);
    act(() => cancel.click());
    expect(done).toBe(0);
    expect(container.textContent).not.toContain("Discard it for good?");

    act(() => container.querySelector("button")!.click());
    await act(async () => container.querySelector("button")!.click());
    expect(done).toBe(1);
    expect(container.querySelector("button")?.textContent).toBe("Discard");
  });
});
