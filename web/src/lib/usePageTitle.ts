/** Sets the document's title for this page ("Cart · Agora"): each page is titled (WCAG 2.4.2). */

import { useEffect } from "react";

export function usePageTitle(title: string | null | undefined): void {
  useEffect(() => {
    document.title = title ? `${title} · Agora` : "Agora";
  }, [title]);
}
