// Paged lists of the helpdesk tables (desktops, sessions, users): the query keys every list
// accepts, the answer's shape, and the id list of bulk actions.
import { z } from 'zod';

/** `q, sort, order, limit (1-200), offset or cursor`; `sort` one of the list's columns. */
export function pageQuery<S extends readonly [string, ...string[]]>(sorts: S) {
  return {
    q: z.string().trim().max(100).regex(/^[^\0<>]*$/, 'no < > or NUL characters').optional(),
    sort: z.enum(sorts).optional(),
    order: z.enum(['asc', 'desc']).default('asc'),
    limit: z.coerce.number().int().min(1).max(200).optional(),
    offset: z.coerce.number().int().min(0).max(1_000_000).optional(),
    /** The previous page's nextCursor (an opaque position in the sorted list). */
    cursor: z.string().regex(/^\d{1,7}$/, 'the nextCursor of a previous answer').transform(Number).optional(),
  };
}

/** `{items, total, nextCursor?}`; nextCursor only when more rows follow. */
export function pageAnswer<T>(page: { items: T[]; total: number }, start: number, limit: number): { items: T[]; total: number; nextCursor?: string } {
  return { items: page.items, total: page.total, ...(start + limit < page.total ? { nextCursor: String(start + limit) } : {}) };
}

/** A bulk action's ids: 1 to 500 desktop or session ids. */
export const bulkIds = z.array(z.uuid()).min(1).max(500);
