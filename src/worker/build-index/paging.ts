/** Lexically ordered pages for tags/list and _catalog (distribution-spec "Listing Tags"). */
export interface Page {
  items: string[];
  /** True when entries follow the last one returned. */
  more: boolean;
}

/** With no `n`, a page still stops here and links to the next one. */
export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 10_000;
