// Keeps docs/config.md in step with the schema and the commands: it must be exactly what
// `npm run docs:config` writes, and its example must be a valid config file.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import * as z from 'zod/mini';
import { CONFIG_DOC, CONFIG_EXAMPLE, configDocs } from '../../../scripts/config-docs.ts';
import { configSchema } from './schema.ts';

test('docs/config.md is what the generator makes (else run `npm run docs:config`)', async () => {
  assert.equal(readFileSync(CONFIG_DOC, 'utf8'), await configDocs());
});

test("the reference's example is a valid config file", () => {
  assert.ok(z.safeParse(configSchema, parse(CONFIG_EXAMPLE)).success);
});
