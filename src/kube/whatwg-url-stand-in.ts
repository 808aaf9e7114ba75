// Stands in for the `whatwg-url` package in the workstation bundle (scripts/build.ts aliases
// it here). node-fetch 2, which @kubernetes/client-node uses, imports it only as a fallback
// for a Node without a URL class (`Url.URL || whatwgUrl.URL`), which no supported Node is;
// loading the package (and tr46's Unicode mapping table) cost every telepod process 2.8 MB of
// heap and 0.3 MB of bundle.

/** Node's own WHATWG URL class, which node-fetch uses in any case. */
export const URL = globalThis.URL;

/** node-fetch's default import of the package. */
export default { URL };
