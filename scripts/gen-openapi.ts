/**
 * Writes docs/openapi/halyard-api.json from src/api/openapi.ts (the same bytes halyard-api
 * serves at GET /openapi.json). A unit test compares the committed file with
 * `renderOpenApi()`. Run: `npm run build && npm run docs`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { OPENAPI_PATH, renderOpenApi } from '../src/api/openapi';
import { SUBMISSION_OPENAPI_PATH, renderSubmissionOpenApi } from '../src/http/openapi';
import { repositoryRoot } from './gen-config-docs';

export function openApiPath(): string {
  return join(repositoryRoot(), OPENAPI_PATH);
}

if (require.main === module) {
  const file = openApiPath();
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderOpenApi());
  console.log(`wrote ${file}`);
  const sub = join(repositoryRoot(), SUBMISSION_OPENAPI_PATH);
  writeFileSync(sub, renderSubmissionOpenApi());
  console.log(`wrote ${sub}`);
}
