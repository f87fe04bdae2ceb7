import { act } from "react";
import { createRoot } from "react-dom/client";
import { describe, expect, it } from "vitest";
import { connection } from "../api/connection";
import { NetworkError } from "../api/errors";
import { useApi } from "./useApi";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

describe("useApi", () => {
  it("loads, and loads again by itself when a lost connection comes back", async () => {
    let calls = 0;
    async function load(): Promise<string> {
      calls += 1;
      if (calls === 1) {
        connection.reportFailure();
        throw new NetworkError();
      }
      return "products";
    }
    function Probe() {
      const state = useApi(load, []);
      if (state.loading) return <p>loading</p>;
      return <p>{state.error ? "failed" : state.value}</p>;
    }
    const container = document.createElement("div");
    const root = createRoot(container);
    await act(async () => root.render(<Probe />));
    expect(container.textContent).toBe("failed");
    expect(calls).toBe(1);
    await act(async () => connection.reportSuccess());
    expect(container.textContent).toBe("products");
    expect(calls).toBe(2);
    act(() => root.unmount());
  });
});
