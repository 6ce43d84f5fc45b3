/**
 * The OpenAPI 3.1 description of halyard-api (served at `GET /openapi.json`, committed as
 * docs/openapi/halyard-api.json; a unit test keeps the two equal).
 *
 * Inputs: the command table (commands.ts), so the list of commands in the description can
 * never disagree with what the server accepts. Output: a plain JSON-serialisable object.
 * Invariants: deterministic (same table, same document), no host or port in it (`servers`
 * is relative), no secrets.
 */
import { COMMANDS, type CommandInfo } from '../control/commands';

export const OPENAPI_PATH = 'docs/openapi/halyard-api.json';

type Json = Record<string, unknown>;

function commandRows(): string {
  return (Object.entries(COMMANDS) as Array<[string, CommandInfo]>)
    .map(([name, c]) => `| \`${c.letter}\` | \`${name}\` | ${c.request ?? '(none)'} | ${c.raw ? 'bytes as `{"data": base64}`' : (c.response ?? '(empty: `{}`)')} | ${c.summary} |`)
    .join('\n');
}

function commandValues(): string[] {
  return (Object.entries(COMMANDS) as Array<[string, CommandInfo]>).flatMap(([name, c]) => [c.letter, name]);
}

function errorResponse(description: string): Json {
  return { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
}

/** The whole document. */
export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'halyard-api',
      version: '1',
      summary: "HTTP/JSON front of Halyard's control sockets, compatible with Halon's halon-api.",
      description:
        'One endpoint relays a control-socket command to a daemon and answers with the reply in the proto3 JSON mapping ' +
        '(64-bit integers as strings, enums by name, bytes as base64, default values left out). ' +
        'Messages are those of src/control/proto/smtpd.proto. See docs/api.md.\n\n' +
        '| Letter | Name | Request (`payload`) | Response | Summary |\n|---|---|---|---|---|\n' +
        commandRows(),
    },
    servers: [{ url: '/' }],
    security: [{ apiKey: [] }],
    paths: {
      '/api/protobuf': {
        post: {
          operationId: 'relayCommand',
          summary: 'Run one control-socket command',
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { $ref: '#/components/schemas/Request' } } },
          },
          responses: {
            '200': {
              description: 'The daemon carried the command out; the body is its response message in proto3 JSON (`{}` for commands without one).',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
            '400': errorResponse('Not JSON, not an object, unknown program or command, bad version, or a payload that does not fit the request message (the reason names the field).'),
            '401': errorResponse('X-API-Key missing or wrong.'),
            '404': errorResponse('No such path.'),
            '405': errorResponse('Method not allowed (POST only).'),
            '413': errorResponse("Body larger than the listener's maxsize."),
            '422': errorResponse("The daemon refused the command (its 'E' reply); `error` is the daemon's text."),
            '502': errorResponse("The program's control socket cannot be reached or the connection failed."),
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openApi',
          summary: 'This document',
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1 document.', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
    components: {
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'authentication.secret of api.yaml.' },
      },
      responses: { Error: errorResponse('Error') },
      schemas: {
        Request: {
          type: 'object',
          additionalProperties: false,
          required: ['program', 'command'],
          properties: {
            version: {
              description: 'Control-socket API version to announce; default 6.4.',
              type: 'object',
              required: ['major', 'minor'],
              properties: { major: { type: 'integer', minimum: 0, maximum: 255 }, minor: { type: 'integer', minimum: 0, maximum: 255 } },
            },
            program: { description: 'Which control socket (environment.controlsockets.<program>).', type: 'string', enum: ['smtpd', 'rated', 'dlpd'] },
            command: { description: "Halon's command letter, or Halyard's command name.", type: 'string', enum: commandValues() },
            payload: { description: 'The request message in proto3 JSON; omit for commands without a request.', type: 'object' },
          },
          examples: [{ version: { major: 6, minor: 4 }, program: 'smtpd', command: 'F', payload: { conditions: { senders: [{ domain: { value: 'example.org' } }] } } }],
        },
        Error: {
          type: 'object',
          required: ['error'],
          additionalProperties: false,
          properties: { error: { type: 'string' } },
        },
      },
    },
  };
}

/** The document as served and committed: indented JSON with a final newline. */
export function renderOpenApi(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}
