/**
 * Cursor pages (`{items, next_cursor}`): "Next page" follows next_cursor, and
 * a stack of the cursors already passed gives "Previous page".
 *
 * ```tsx
 * const pages = useCursorPages();
 * const data = useApi(() => api.get("/v1/orders", { query: { cursor: pages.cursor } }), [pages.cursor]);
 * <Pagination pages={pages} nextCursor={data.value?.next_cursor ?? null} />
 * ```
 */

import { useCallback, useState } from "react";

export interface CursorPages {
  /** The cursor of the page shown (undefined: the first page). */
  cursor: string | undefined;
  /** The cursors of the pages before this one, oldest first. */
  previous: (string | undefined)[];
  next: (nextCursor: string) => void;
  back: () => void;
  reset: () => void;
}

/** Pure: the stack after moving to the next page. */
export function pushCursor(previous: (string | undefined)[], cursor: string | undefined): (string | undefined)[] {
  return [...previous, cursor];
}

export function useCursorPages(): CursorPages {
  const [state, setState] = useState<{ cursor: string | undefined; previous: (string | undefined)[] }>({
    cursor: undefined,
    previous: [],
  });
  const next = useCallback(
    (nextCursor: string) => setState((s) => ({ cursor: nextCursor, previous: pushCursor(s.previous, s.cursor) })),
    [],
  );
  const back = useCallback(
    () =>
      setState((s) =>
        s.previous.length === 0 ? s : { cursor: s.previous[s.previous.length - 1], previous: s.previous.slice(0, -1) },
      ),
    [],
  );
  const reset = useCallback(() => setState({ cursor: undefined, previous: [] }), []);
  return { cursor: state.cursor, previous: state.previous, next, back, reset };
}

export interface PaginationProps {
  pages: CursorPages;
  nextCursor: string | null | undefined;
  /** Called after a page change (e.g. to move focus or scroll to the top). */
  onChange?: () => void;
  label?: string;
}

export function Pagination({ pages, nextCursor, onChange, label = "Pages" }: PaginationProps) {
  const hasPrevious = pages.previous.length > 0;
  if (!hasPrevious && !nextCursor) return null;
  return (
    <nav className="pagination" aria-label={label}>
      <button
        type="button"
        className="button secondary"
        disabled={!hasPrevious}
        onClick={() => {
          pages.back();
          onChange?.();
        }}
      >
        Previous page
      </button>
      <button
        type="button"
        className="button secondary"
        disabled={!nextCursor}
        onClick={() => {
          if (nextCursor) pages.next(nextCursor);
          onChange?.();
        }}
      >
        Next page
      </button>
    </nav>
  );
}
