import { act } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ApiError, NetworkError } from "../api/errors";
import { connection } from "../api/connection";
import { ConnectionBanner } from "./ConnectionBanner";
import { ErrorMessage } from "./ErrorMessage";
import { Field, fieldSentence } from "./Field";
import { pushCursor } from "./Pagination";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLDivElement;
let root: Root;

beforeEach(() => {
  container = document.createElement("div");
  document.body.append(container);
  root = createRoot(container);
});

afterEach(() => {
  act(() => root.unmount());
  container.remove();
});

describe("ErrorMessage", () => {
  it("shows nothing without an error", () => {
    act(() => root.render(<ErrorMessage error={null} />));
    expect(container.innerHTML).toBe("");
  });

  it("is an alert with the message for the API's code, and offers a retry when it may pass", () => {
    let retried = 0;
    act(() =>
      root.render(
        <ErrorMessage
          error={new ApiError(503, "service_unavailable", "the orders service is unavailable")}
          title="Could not load."
          onRetry={() => (retried += 1)}
        />,
      ),
    );
    const alert = container.querySelector('[role="alert"]');
    expect(alert?.textContent).toContain("Could not load.");
    expect(alert?.textContent).toContain("unavailable right now");
    act(() => container.querySelector("button")?.click());
    expect(retried).toBe(1);
  });

  it("offers no retry for an error that will not pass", () => {
    act(() => root.render(<ErrorMessage error={new ApiError(404, "not_found", "x")} onRetry={() => undefined} />));
    expect(container.querySelector("button")).toBeNull();
  });
});

describe("Field", () => {
  it("labels its control and ties the error to it", () => {
    act(() =>
      root.render(
        <Field label="Phone" hint="E.164" error="must be an E.164 phone number">
          {(props) => <input {...props} />}
        </Field>,
      ),
    );
    const input = container.querySelector("input")!;
    const label = container.querySelector("label")!;
    expect(label.htmlFor).toBe(input.id);
    expect(input.getAttribute("aria-invalid")).toBe("true");
    const described = input.getAttribute("aria-describedby")!.split(" ").map((id) => document.getElementById(id)?.textContent);
    expect(described).toEqual(["E.164", "Phone must be an E.164 phone number"]);
  });

  it("has no error attributes when the value is fine", () => {
    act(() => root.render(<Field label="Name">{(props) => <input {...props} />}</Field>));
    const input = container.querySelector("input")!;
    expect(input.hasAttribute("aria-invalid")).toBe(false);
    expect(input.hasAttribute("aria-describedby")).toBe(false);
  });

  it("turns the API's fragments into sentences", () => {
    expect(fieldSentence("Verification code", "is wrong")).toBe("Verification code is wrong");
    expect(fieldSentence("Name", "Too long.")).toBe("Too long.");
  });
});

describe("ConnectionBanner", () => {
  it("says the connection is lost, and goes away when requests answer again", () => {
    act(() => root.render(<ConnectionBanner />));
    expect(container.textContent).toBe("");
    act(() => connection.reportFailure());
    expect(container.querySelector('[role="alert"]')?.textContent).toMatch(/connection/i);
    act(() => connection.reportSuccess());
    expect(container.textContent).toBe("");
  });

  it("says the browser is offline", () => {
    act(() => root.render(<ConnectionBanner />));
    act(() => window.dispatchEvent(new Event("offline")));
    expect(container.querySelector('[role="alert"]')?.textContent).toMatch(/offline/);
    act(() => window.dispatchEvent(new Event("online")));
    expect(container.textContent).toBe("");
  });

  it("leaves the word to the banner: a page's alert for a lost request names no connection", () => {
    act(() => root.render(<ErrorMessage error={new NetworkError()} />));
    expect(container.textContent).toMatch(/No answer came back/);
    expect(container.textContent).not.toMatch(/offline|connection/i);
  });
});

describe("cursor pages", () => {
  it("keeps the passed cursors for Previous page", () => {
    expect(pushCursor([], undefined)).toEqual([undefined]);
    expect(pushCursor([undefined], "c2")).toEqual([undefined, "c2"]);
  });
});
