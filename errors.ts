/**
 * Error classes shared by every part of tug. Code throws one of these with a
 * sentence-case message (action first, detail after a colon) and, where it
 * wraps another error, `{ cause }`. The API boundary maps each class to an HTTP
 * status and the client maps it back, so callers can test with `instanceof`.
 *
 * @module
 */

/** Base class: every error tug raises on purpose is a TugError. */
export class TugError extends Error {
  /** A stable machine-readable code, used on the wire. */
  readonly code: string = "unknown";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The named object does not exist. */
export class NotFound extends TugError {
  override readonly code = "not_found";
}

/** An object with that name or id exists already. */
export class AlreadyExists extends TugError {
  override readonly code = "already_exists";
}

/** The input is malformed or names something impossible. */
export class InvalidArgument extends TugError {
  override readonly code = "invalid_argument";
}

/** The object is in the wrong state for the operation (a lifecycle error). */
export class FailedPrecondition extends TugError {
  override readonly code = "failed_precondition";
}

/** Another operation holds the object. */
export class Conflict extends TugError {
  override readonly code = "conflict";
}

/** A service tug depends on cannot be reached. */
export class Unavailable extends TugError {
  override readonly code = "unavailable";
}

/** The operation is not supported here. */
export class NotImplemented extends TugError {
  override readonly code = "not_implemented";
}

/** The caller's credentials are missing or were refused (e.g. by a registry). */
export class Unauthenticated extends TugError {
  override readonly code = "unauthenticated";
}

/** Something failed inside tug or the kernel that the caller cannot fix. */
export class Internal extends TugError {
  override readonly code = "internal";
}

/** Every error class by its wire code, for decoding errors received from the API. */
export const ERROR_CLASSES: Readonly<Record<string, new (message: string) => TugError>> = {
  not_found: NotFound,
  already_exists: AlreadyExists,
  invalid_argument: InvalidArgument,
  failed_precondition: FailedPrecondition,
  conflict: Conflict,
  unavailable: Unavailable,
  not_implemented: NotImplemented,
  unauthenticated: Unauthenticated,
  internal: Internal,
};

/** The message of an unknown thrown value, for printing. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
