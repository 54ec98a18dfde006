/** tug's version, printed by `tug version` and reported in the runtime's features JSON. */
export const VERSION = "0.1.0";

/** The OCI runtime-spec version that tug implements. */
export const OCI_VERSION = "1.1.0";
