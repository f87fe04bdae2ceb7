/** What a shopper is told about stock: "In stock", "Only N left", "Out of stock". */

/** At or below this many available, the page says "Only N left". */
export const LOW_STOCK = 5;

export function availabilityText(available: number | null): string {
  if (available === null) return "Availability unknown";
  if (available <= 0) return "Out of stock";
  if (available <= LOW_STOCK) return `Only ${available} left`;
  return "In stock";
}
