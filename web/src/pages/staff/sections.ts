/**
 * The back office's sections and the scope each needs: the staff index shows
 * a section only when the signed-in token holds its scope, and a section's
 * route shows "you need the X permission" instead of calling the API without
 * it. The API checks every scope again; this only keeps people away from
 * pages they cannot use.
 */

export interface StaffSection {
  /** The route. */
  path: string;
  /** The link's text and the page's heading. */
  title: string;
  /** What the section is for (the index's description). */
  description: string;
  /** The scope the section needs. */
  scope: string;
}

/** What each staff scope lets a person do (for the "you need" messages). */
export const SCOPE_DESCRIPTIONS: Record<string, string> = {
  "catalog:write": "create and change products",
  "inventory:write": "set stock levels",
  "billing:admin": "see every payment, refund and handle disputes",
  "ops:read": "see the platform's services and dead letters",
  "ops:write": "replay and discard dead letters",
};

export const SECTIONS: readonly StaffSection[] = [
  {
    path: "/staff/products",
    title: "Products",
    description: "Create, edit, deactivate products and upload their images.",
    scope: "catalog:write",
  },
  {
    path: "/staff/stock",
    title: "Stock",
    description: "See and set the stock of a product in each warehouse.",
    scope: "inventory:write",
  },
  {
    path: "/staff/payments",
    title: "Payments",
    description: "Every payment: refunds, disputes and receipts.",
    scope: "billing:admin",
  },
  {
    path: "/staff/dead-letters",
    title: "Dead letters",
    description: "Events the services failed to handle: inspect, replay or discard.",
    scope: "ops:read",
  },
  {
    path: "/staff/services",
    title: "Services",
    description: "Running instances, queues and circuit breakers.",
    scope: "ops:read",
  },
];

/** The sections `scopes` allow, in the index's order. */
export function visibleSections(scopes: readonly string[]): StaffSection[] {
  return SECTIONS.filter((section) => scopes.includes(section.scope));
}

/** The first of `required` that `scopes` lacks, or null when all are held. */
export function missingScope(required: string | readonly string[], scopes: readonly string[]): string | null {
  const wanted = typeof required === "string" ? [required] : required;
  return wanted.find((scope) => !scopes.includes(scope)) ?? null;
}

/** "You need the catalog:write permission (to create and change products)." */
export function missingScopeMessage(scope: string): string {
  const what = SCOPE_DESCRIPTIONS[scope];
  return what
    ? `You need the ${scope} permission to ${what}. Ask an administrator to grant it, then sign in again.`
    : `You need the ${scope} permission for this page. Ask an administrator to grant it, then sign in again.`;
}
