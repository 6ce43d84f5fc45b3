/**
 * The control socket's command table: command character → request and response message.
 * Shared by the daemon (server.ts, handlers.ts) and by halyardctl, so both sides always agree
 * on whether a command carries a body.
 *
 * Letters a–z and A–P are Halon's (halon-api.md §5.2) and keep Halon's meaning. Commands that
 * exist in Halon's schema but whose letter Halon does not document get a letter from Halyard's
 * own range, the ASCII digits '0'–'9' (docs/control-socket.md): Halon assigns letters
 * alphabetically (a–z, then A–Z) and has used letters after P for commands whose letters are
 * unknown to us, so any letter could clash; digits cannot be confused with the raw version
 * bytes either (those are below 0x20). A Halyard digit command is not understood by Halon.
 *
 * `request` undefined = no body (no length field on the wire); `response` undefined = an empty
 * '+' reply; `raw` = the '+' payload is bytes, not a protobuf message.
 */
import type * as M from './messages';

export interface CommandInfo {
  letter: string;
  request?: string;
  response?: string;
  /** The '+' payload is opaque bytes (export). */
  raw?: boolean;
  summary: string;
}

export const COMMANDS = {
  processStats: { letter: 'q', response: 'ProcessStatsResponse', summary: 'process statistics' },
  configReload: { letter: 'r', summary: 'reload smtpd-app.yaml' },
  suspendReload: { letter: 'o', summary: 'reload smtpd-suspend.yaml' },
  policyReload: { letter: 'p', summary: 'reload smtpd-policy.yaml' },
  deliveryReload: { letter: 'H', summary: 'reload smtpd-delivery.yaml' },
  memoryFetch: { letter: 'y', request: 'HSLMemoryRequest', response: 'HSLMemoryResponse', summary: 'fetch a shared memory key' },
  memoryStore: { letter: 'z', request: 'HSLMemoryStoreRequest', response: 'HSLMemoryStoreResponse', summary: 'store a shared memory key' },
  memoryDelete: { letter: 'A', request: 'HSLMemoryDeleteRequest', response: 'HSLMemoryDeleteResponse', summary: 'delete a shared memory key' },
  memoryList: { letter: 'K', request: 'HSLMemoryListRequest', response: 'HSLMemoryListResponse', summary: 'list shared memory keys' },
  resolverClearAll: { letter: 'C', summary: 'clear the DNS cache (Halon 5.4 form, no body)' },
  resolverCacheClear: { letter: '1', request: 'ResolverCacheClearRequest', response: 'ResolverCacheClearResponse', summary: 'clear the DNS cache, optionally one domain' },
  queueGroupBy: { letter: 'D', request: 'QueueGroupByRequest', response: 'QueueGroupByResponse', summary: 'queue distribution' },
  queueImport: { letter: 'E', request: 'QueueImportRequest', response: 'QueueImportResponse', summary: 'import a message' },
  queueList: { letter: 'F', request: 'QueueListRequest', response: 'QueueListResponse', summary: 'list queue entries' },
  queueUpdate: { letter: 'G', request: 'QueueUpdateRequest', response: 'QueueUpdateResponse', summary: 'move, delete, bounce or change queue entries' },
  queueQuota: { letter: 'I', request: 'QueueQuotaRequest', response: 'QueueQuotaResponse', summary: 'quota usage' },
  queueUnload: { letter: 'J', request: 'QueueUnloadRequest', response: 'QueueUnloadResponse', summary: 'unload queue entries to files' },
  queueExport: { letter: '0', request: 'QueueExportRequest', raw: true, summary: 'export one queue entry' },
  suspendList: { letter: 's', request: 'SuspendRequest', response: 'SuspendResponse', summary: 'list suspends' },
  suspendAdd: { letter: 't', request: 'SuspendAddRequest', response: 'SuspendAddResponse', summary: 'add a dynamic suspend' },
  suspendDelete: { letter: 'u', request: 'SuspendDeleteRequest', response: 'SuspendDeleteResponse', summary: 'delete a dynamic suspend' },
  suspendUpdate: { letter: 'O', request: 'SuspendUpdateRequest', response: 'SuspendUpdateResponse', summary: 'update a dynamic suspend' },
  policyList: { letter: 'v', response: 'PolicyConditionResponse', summary: 'list dynamic policy conditions' },
  policyAdd: { letter: 'w', request: 'PolicyConditionAddRequest', response: 'PolicyConditionAddResponse', summary: 'add a dynamic policy condition' },
  policyDelete: { letter: 'x', request: 'PolicyConditionDeleteRequest', response: 'PolicyConditionDeleteResponse', summary: 'delete a dynamic policy condition' },
  policyUpdate: { letter: 'P', request: 'PolicyConditionUpdateRequest', response: 'PolicyConditionUpdateResponse', summary: 'update a dynamic policy condition' },
  rateRefill: { letter: 'B', request: 'PolicyRateRefillRequest', response: 'PolicyRateRefillResponse', summary: 'refill rate buckets' },
} as const satisfies Record<string, CommandInfo>;

export type CommandName = keyof typeof COMMANDS;

/** Request and response shapes per command (`undefined` = none). */
export interface CommandMessages {
  processStats: [undefined, M.ProcessStatsResponse];
  configReload: [undefined, undefined];
  suspendReload: [undefined, undefined];
  policyReload: [undefined, undefined];
  deliveryReload: [undefined, undefined];
  memoryFetch: [M.HSLMemoryRequest, M.HSLMemoryResponse];
  memoryStore: [M.HSLMemoryStoreRequest, M.HSLMemoryStoreResponse];
  memoryDelete: [M.HSLMemoryDeleteRequest, M.HSLMemoryDeleteResponse];
  memoryList: [M.HSLMemoryListRequest, M.HSLMemoryListResponse];
  resolverClearAll: [undefined, undefined];
  resolverCacheClear: [M.ResolverCacheClearRequest, M.ResolverCacheClearResponse];
  queueGroupBy: [M.QueueGroupByRequest, M.QueueGroupByResponse];
  queueImport: [M.QueueImportRequest, M.QueueImportResponse];
  queueList: [M.QueueListRequest, M.QueueListResponse];
  queueUpdate: [M.QueueUpdateRequest, M.QueueUpdateResponse];
  queueQuota: [M.QueueQuotaRequest, M.QueueQuotaResponse];
  queueUnload: [M.QueueUnloadRequest, M.QueueUnloadResponse];
  queueExport: [M.QueueExportRequest, Uint8Array];
  suspendList: [M.SuspendRequest, M.SuspendResponse];
  suspendAdd: [M.SuspendAddRequest, M.SuspendAddResponse];
  suspendDelete: [M.SuspendDeleteRequest, M.SuspendDeleteResponse];
  suspendUpdate: [M.SuspendUpdateRequest, M.SuspendUpdateResponse];
  policyList: [undefined, M.PolicyConditionResponse];
  policyAdd: [M.PolicyConditionAddRequest, M.PolicyConditionAddResponse];
  policyDelete: [M.PolicyConditionDeleteRequest, M.PolicyConditionDeleteResponse];
  policyUpdate: [M.PolicyConditionUpdateRequest, M.PolicyConditionUpdateResponse];
  rateRefill: [M.PolicyRateRefillRequest, M.PolicyRateRefillResponse];
}

export type RequestOf<K extends CommandName> = CommandMessages[K][0];
export type ResponseOf<K extends CommandName> = CommandMessages[K][1];

const BY_LETTER: ReadonlyMap<string, CommandName> = new Map(
  (Object.keys(COMMANDS) as CommandName[]).map((name) => [COMMANDS[name].letter, name]),
);

/** The command a letter stands for, if any. */
export function commandByLetter(letter: string): CommandName | undefined {
  return BY_LETTER.get(letter);
}

export function info(name: CommandName): CommandInfo {
  return COMMANDS[name];
}
