import { describe, expect, it } from "vitest";
import { SECTIONS, missingScope, missingScopeMessage, visibleSections } from "./sections";

describe("staff sections by scope", () => {
  it("shows only the sections the scopes allow", () => {
    expect(visibleSections(["profile", "catalog:write"]).map((s) => s.path)).toEqual(["/staff/products"]);
    expect(visibleSections(["ops:read"]).map((s) => s.path)).toEqual([
      "/staff/dead-letters",
      "/staff/services",
    ]);
    expect(visibleSections(["profile", "orders:read"])).toEqual([]);
  });

  it("shows every section to an administrator", () => {
    const admin = [
      "catalog:write",
      "inventory:write",
      "billing:admin",
      "users:admin",
      "ops:read",
      "ops:write",
    ];
    expect(visibleSections(admin)).toEqual(SECTIONS);
  });

  it("names the missing scope", () => {
    expect(missingScope("billing:admin", ["ops:read"])).toBe("billing:admin");
    expect(missingScope(["ops:read", "ops:write"], ["ops:read"])).toBe("ops:write");
    expect(missingScope(["ops:read"], ["ops:read", "ops:write"])).toBeNull();
  });

  it("says what the permission is for", () => {
    expect(missingScopeMessage("inventory:write")).toMatch(
      /^You need the inventory:write permission to set stock levels\./,
    );
    expect(missingScopeMessage("x:y")).toMatch(/^You need the x:y permission for this page\./);
  });
});
