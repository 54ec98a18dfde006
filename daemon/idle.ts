/**
 * The daemon's idle-time clean-up (util/gc.ts), scheduled after each burst
 * of work: API requests, the metadata garbage collection, start-up.
 *
 * @module
 */

import { collectSoon } from "../util/gc.ts";

/**
 * Schedules a garbage collection and malloc_trim for one second after the
 * last call: soon enough that an idle daemon holds no garbage of its last
 * burst, late enough that the requests of one burst do not pay for a
 * collection each.
 */
export function collectWhenIdle(): void {
  collectSoon(1000);
}
