import { describe, expect, it } from "vitest";
import { profileChanges } from "./ProfilePage";

const me = {
  id: "u",
  email: "demo@agora.local",
  name: "Demo",
  phone: null,
  address: null,
  roles: ["customer"],
  email_verified: true,
  phone_verified: false,
};
const empty = { name: "Demo", phone: "", line1: "", line2: "", city: "", postal_code: "", country: "" };

describe("profile changes", () => {
  it("sends only what changed", () => {
    expect(profileChanges(me, empty)).toEqual({});
    expect(profileChanges(me, { ...empty, name: " Dem " })).toEqual({ name: "Dem" });
    expect(profileChanges(me, { ...empty, phone: "+49 151 1234-5678" })).toEqual({ phone: "+4915112345678" });
  });

  it("sends the address whole, and null to remove it or the phone", () => {
    const address = { line1: "Stoa 1", line2: "", city: "Athens", postal_code: "105 55", country: "gr" };
    expect(profileChanges(me, { ...empty, ...address })).toEqual({
      address: { line1: "Stoa 1", line2: null, city: "Athens", postal_code: "105 55", country: "GR" },
    });
    const withBoth = {
      ...me,
      phone: "+4915112345678",
      address: { line1: "Stoa 1", line2: null, city: "Athens", postal_code: "105 55", country: "GR" },
    };
    expect(profileChanges(withBoth, empty)).toEqual({ phone: null, address: null });
  });
});
