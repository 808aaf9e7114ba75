// The YAML library, for the commands that import it on demand (a config file, `-o yaml`). yaml
// is CommonJS: in the bundle, `import('yaml')` would give only a default export, so the names are
// bound here by a static import and this module is what the commands import.
export { parse, stringify } from 'yaml';
