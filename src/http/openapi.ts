/**
 * The OpenAPI 3.1 description of HTTP submission (`POST /v1/submission`), served by every
 * submission server at `GET /openapi.json` and committed as docs/openapi/submission.json (a
 * unit test keeps the two equal). Deterministic, no host, no secrets.
 */
export const SUBMISSION_OPENAPI_PATH = 'docs/openapi/submission.json';

type Json = Record<string, unknown>;

const jsonOf = (ref: string): Json => ({ 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } });

function result(description: string): Json {
  return { description, content: jsonOf('Result') };
}

function error(description: string): Json {
  return { description, content: jsonOf('Error') };
}

export function submissionOpenApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Halyard HTTP submission',
      version: '1',
      description: 'Submit a message over HTTP to a server of type http or https. The message runs the server\'s eod hook (with `arguments.metadata` and `arguments.http`) and is on disk before the reply, as with SMTP.',
    },
    servers: [{ url: '/' }],
    security: [{ apiKey: [] }],
    paths: {
      '/v1/submission': {
        post: {
          summary: 'Submit one message',
          parameters: [{ name: 'pretty', in: 'query', required: false, schema: { type: 'string', enum: ['true'] }, description: 'Indent the JSON answer.' }],
          requestBody: {
            required: true,
            content: {
              'multipart/form-data': {
                schema: {
                  type: 'object',
                  properties: {
                    options: { $ref: '#/components/schemas/Options' },
                    'options.gzip': { type: 'string', format: 'binary', description: 'The options part, gzip-compressed.' },
                    rfc822: { type: 'string', format: 'binary', description: 'The message (RFC 5322); bare LF line ends become CRLF.' },
                    'rfc822.gzip': { type: 'string', format: 'binary', description: 'The message, gzip-compressed.' },
                  },
                },
                encoding: { options: { contentType: 'application/json' } },
              },
            },
          },
          responses: {
            200: result('Queued (result.code 250), or accepted by the hook.'),
            400: error('Malformed multipart, JSON, option or address; the reason names the field.'),
            401: error('Missing or wrong X-API-Key.'),
            404: error('Unknown path.'),
            405: error('Method other than POST.'),
            413: error('Message over phases.data.maxsize (after gunzip).'),
            422: result('Rejected by the eod hook (5xx result).'),
            503: result('Deferred by the eod hook, or the spool is full or failing (4xx result).'),
          },
        },
      },
    },
    components: {
      securitySchemes: { apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' } },
      schemas: {
        Options: {
          type: 'object',
          required: ['recipients'],
          properties: {
            sender: { description: 'Envelope sender; "" is the null reverse-path. A string or {localpart, domain}.', oneOf: [{ type: 'string' }, { $ref: '#/components/schemas/Address' }] },
            recipients: { type: 'array', minItems: 1, items: { oneOf: [{ type: 'string' }, { $ref: '#/components/schemas/Address' }] } },
            metadata: { type: 'object', additionalProperties: { type: 'string' }, description: 'Given to the eod hook as arguments.metadata and returned as the hook left it.' },
          },
          additionalProperties: false,
        },
        Address: { type: 'object', required: ['localpart', 'domain'], properties: { localpart: { type: 'string' }, domain: { type: 'string', description: 'U-labels are accepted.' } } },
        Result: {
          type: 'object',
          properties: {
            result: { type: 'object', properties: { code: { type: 'integer' }, enhanced: { type: 'array', items: { type: 'integer' }, minItems: 3, maxItems: 3 }, reason: { type: 'array', items: { type: 'string' } } } },
            transaction: { type: 'object', properties: { id: { type: 'string', format: 'uuid' } } },
            metadata: { type: 'object', additionalProperties: { type: 'string' } },
          },
        },
        Error: { type: 'object', required: ['error'], properties: { error: { type: 'string' } } },
      },
    },
  };
}

export function renderSubmissionOpenApi(): string {
  return JSON.stringify(submissionOpenApiDocument(), null, 2) + '\n';
}
