/**
 * TypeScript shapes of the control-socket messages in their `internal` object form
 * (schema.ts): field names as in proto/smtpd.proto, 64-bit integers as numbers, enums by
 * name, bytes as Buffers, every field optional because proto3 leaves defaults out. A oneof
 * is its members as optional fields (exactly one set); decoding also names the set member
 * under the oneof's own name (e.g. `TimeValue.time: 'relative'`), which encoding ignores.
 *
 * These are declarations only; the .proto is the source of truth. Names of nested messages
 * are joined with `_` (`Condition.MailAddress` → `Condition_MailAddress`).
 */

export type Queue = 'ACTIVE' | 'DEFER';
export type Freeze = 'HOLD' | 'UPDATE';
export type Working = 'UNKNOWN' | 'SENDING';
export type ActionType = 'DELETE' | 'BOUNCE';
export type Order = 'ASC' | 'DESC';

export interface UInt64Value { value?: number }
export interface DoubleValue { value?: number }
export interface StringValue { value?: string }
export interface BoolValue { value?: boolean }
export interface StringRegexValue { value?: string; type?: 'EXACT' | 'REGEX' }
/** Seconds: `absolute` since the Unix epoch, or `relative` to now (negative = in the past). */
export interface TimeValue { absolute?: number; relative?: number; time?: 'absolute' | 'relative' }

export interface Compare<V> { eq?: V; neq?: V; lt?: V; gt?: V; gte?: V; lte?: V }
export type CompareTime = Compare<TimeValue>;
export type CompareUInt64 = Compare<UInt64Value>;
export type CompareDouble = Compare<DoubleValue>;
export type Comparator = keyof Compare<unknown>;

export interface StringMatch { exclude?: boolean; value?: string; type?: 'EXACT' | 'PARTIAL' | 'REGEX'; caseless?: boolean }

export interface QueueItemID { transaction?: string; queue?: number }

// ---- Condition (§5.4): OR within one repeated field, AND across fields ----

export interface Condition_QueueItemID { transaction?: string; queue?: number; exclude?: boolean }
export interface Condition_AnyMatch { string?: StringMatch[]; double?: CompareDouble[] }
export interface Condition_MailAddress { localpart?: StringMatch; domain?: StringRegexValue; exclude?: boolean }
export interface Condition_MapStringValue { value?: Record<string, Condition_AnyMatch>; exclude?: boolean }
export interface Condition_CompareStringValue { value?: string; exclude?: boolean }
export interface Condition_CompareStringRegexValue { value?: string; exclude?: boolean; type?: 'EXACT' | 'REGEX' }
export interface TupleFields {
  transportid?: boolean;
  localip?: boolean;
  remoteip?: boolean;
  remotemx?: boolean;
  recipientdomain?: boolean;
  jobid?: boolean;
  grouping?: boolean;
}

export interface Condition {
  queues?: Array<{ queue?: Queue }>;
  freezes?: Array<{ freeze?: Freeze }>;
  workings?: Array<{ working?: Working; updatefreezing?: BoolValue }>;
  ids?: Condition_QueueItemID[];
  hold?: BoolValue;
  serverids?: Condition_CompareStringValue[];
  senderips?: Condition_CompareStringValue[];
  transportids?: Condition_CompareStringRegexValue[];
  jobids?: Condition_CompareStringRegexValue[];
  groupings?: Condition_CompareStringRegexValue[];
  stageids?: Condition_CompareStringValue[];
  senders?: Condition_MailAddress[];
  recipients?: Condition_MailAddress[];
  tss?: CompareTime[];
  retrytss?: CompareTime[];
  retrycounts?: CompareUInt64[];
  subjects?: StringMatch[];
  metadatas?: Condition_MapStringValue[];
  quotas?: Condition_CompareStringValue[];
  sizes?: CompareUInt64[];
  retryreasons?: StringMatch[];
  localips?: Condition_CompareStringValue[];
  remoteips?: Condition_CompareStringValue[];
  remotemxs?: Condition_CompareStringRegexValue[];
  tags?: Condition_CompareStringValue[];
  priorities?: CompareUInt64[];
  probability?: number;
  policygroupings?: TupleFields;
}

// ---- Queue (§5.5) ----

export interface Paging { offset?: number; limit?: number }

export interface QueueListRequest_Sorting {
  ts?: Order;
  sender?: { localpart?: Order; domain?: Order };
  recipient?: { localpart?: Order; domain?: Order };
  working?: { duration?: Order };
  retryts?: Order;
  size?: Order;
  retrycount?: Order;
}
export interface QueueListRequest { conditions?: Condition; sortings?: QueueListRequest_Sorting[]; paging?: Paging }

export interface QueueItem {
  id?: QueueItemID;
  queue?: { queue?: Queue };
  freeze?: { freeze?: Freeze };
  working?: { working?: Working; updatefreezing?: boolean; duration?: number };
  State?: 'queue' | 'freeze' | 'working';
  hqfpath?: string;
  ts?: number;
  hold?: boolean;
  jobid?: string;
  grouping?: string;
  stageid?: string;
  metadata?: Record<string, string>;
  serverid?: string;
  transportid?: string;
  sender?: { localpart?: string; domain?: string };
  recipient?: { localpart?: string; domain?: string };
  retrycount?: number;
  retrydelay?: number;
  retryreason?: string;
  size?: number;
  senderip?: string;
  senderhelo?: string;
  saslusername?: string;
  subject?: string;
  localips?: string[];
  localipsordered?: boolean;
  remoteip?: string;
  remotemx?: string;
  tags?: string[];
  quotas?: string[];
  dsn?: { envid?: string; ret?: string; notify?: string; orcpt?: string };
  priority?: number;
}
export interface QueueListResponse { items?: QueueItem[]; paging?: { total?: number } }

export type GroupByField = 'transportid' | 'recipientdomain' | 'senderdomain' | 'jobid' | 'grouping' | 'senderip' | 'remoteip' | 'remotemx' | 'localip';
/** One of the boolean fields, or `metadata` with a key. */
export type QueueGroupByRequest_GroupBy = Partial<Record<GroupByField, boolean>> & { metadata?: string };
export interface QueueGroupByRequest_Counts {
  queue?: Queue;
  freeze?: Freeze;
  working?: Working;
  ts?: CompareTime;
  retryts?: CompareTime;
  retrycount?: CompareUInt64;
  priority?: CompareUInt64;
  return?: { type?: 'COUNT' | 'BYTES'; unique?: QueueGroupByRequest_GroupBy & { nogrouping?: boolean } };
}
export interface Groupings {
  transportid?: StringRegexValue[];
  localip?: StringValue[];
  remoteip?: StringValue[];
  remotemx?: StringRegexValue[];
  recipientdomain?: StringRegexValue[];
  jobid?: StringRegexValue[];
  grouping?: StringRegexValue[];
}
export interface QueueGroupByRequest {
  conditions?: Condition;
  sortings?: Array<{ groupby?: number; total?: boolean; count?: number; order?: Order }>;
  paging?: Paging;
  groupbys?: QueueGroupByRequest_GroupBy[];
  counts?: QueueGroupByRequest_Counts[];
  return?: 'COUNT' | 'BYTES';
  groupings?: Record<string, Groupings>;
  policygroupings?: TupleFields;
}
export interface QueueGroupByResponse {
  items?: Array<{ groupbys?: string[]; counts?: number[]; total?: number }>;
  paging?: { total?: number };
}

export interface QueueUpdateRequest {
  conditions?: Condition;
  move?: { queue?: Queue; freeze?: Freeze; retryts?: TimeValue; retrytsjitter?: UInt64Value };
  actiontype?: ActionType;
  action?: { type?: ActionType; dsn?: { status?: { class?: number; subject?: number; detail?: number }; diagnosticcode?: string } };
  task?: 'move' | 'actiontype' | 'action';
  transportid?: StringValue;
  metadata?: Record<string, string>;
  freeze?: boolean;
  duplicate?: boolean;
  sender?: { localpart?: StringValue; domain?: StringValue };
  recipient?: { localpart?: StringValue; domain?: StringValue };
  retrycount?: UInt64Value;
  priority?: UInt64Value;
  paging?: { limit?: number };
}
/** `working`: entries that matched but were busy and were left alone. */
export interface QueueUpdateResponse { affected?: number; working?: number }

export interface QueueUnloadRequest { conditions?: Condition; freeze?: boolean; partial?: boolean }
export interface QueueUnloadResponse { hqfpaths?: string[]; partial?: number; working?: number }

export interface QueueImportRequest {
  data?: { rfc822?: Buffer; hqf?: Buffer };
  reset?: { transactionid?: BoolValue; ts?: BoolValue; retrycount?: BoolValue };
}
export interface QueueImportResponse { transactionid?: string }
export interface QueueExportRequest { id?: QueueItemID }
export interface QueueQuotaRequest { quota?: string }
export interface QueueQuotaResponse { count?: number; bytes?: number }

// ---- Process statistics (§5.6) ----

export interface ScriptStats { pending?: number; running?: number; finished?: number; errors?: number; threads?: number; suspended?: number; threadid?: string }
export type ServerHook = 'connect' | 'proxy' | 'helo' | 'auth' | 'mailfrom' | 'rcptto' | 'eod' | 'disconnect';
export interface CacheStats { maxsize?: number; size?: number; hits?: number; misses?: number; expires?: number; evicts?: number; skips?: number }
export interface ProcessStatsResponse {
  process?: { pid?: number; runtime?: number; version?: { major?: number; minor?: number; patch?: number } };
  resolver?: {
    pending?: number;
    dedup?: number;
    running?: number;
    maxrunning?: number;
    cache?: CacheStats;
    domain?: { cache?: Omit<CacheStats, 'skips'> };
  };
  servers?: Array<{ serverid?: string; connections?: { concurrent?: number; maxconcurrent?: number }; scripts?: Partial<Record<ServerHook, ScriptStats>> }>;
  queue?: {
    loader?: { count?: number; pending?: number; active?: number; maxactive?: number };
    scripts?: { predelivery?: ScriptStats; postdelivery?: ScriptStats };
    queue?: { defer?: { size?: number }; active?: { size?: number; priorities?: Array<{ size?: number }> } };
    freeze?: { hold?: { size?: number }; update?: { size?: number; pending?: number } };
    policy?: {
      concurrency?: { counters?: number; suspends?: number };
      rate?: { buckets?: number; suspends?: number };
      dynamic?: { suspends?: number; conditions?: number };
    };
    pickup?: { count?: number; skips?: number; misses?: number; pending?: number };
    connections?: { concurrent?: number; maxconcurrent?: number; pooling?: CacheStats };
    quota?: { size?: number };
    delivery?: { delivered?: number; delayed?: number; failed?: number };
    release?: { pending?: number };
  };
  threads?: { scripts?: Array<{ id?: string; pending?: number; rescheduled?: number; running?: number; maxrunning?: number; scripts?: number; maxscripts?: number }> };
}

// ---- HSL memory and resolver (§5.9, §5.10) ----

export interface HSLMemoryRequest { key?: string }
export interface HSLMemoryResponse { value?: string }
export interface HSLMemoryStoreRequest { key?: string; value?: string; return?: boolean }
export interface HSLMemoryStoreResponse { value?: string }
export interface HSLMemoryDeleteRequest { key?: string; return?: boolean }
export interface HSLMemoryDeleteResponse { affected?: number; value?: string }
export interface HSLMemoryListRequest { condition?: { key?: StringMatch }; paging?: Paging }
export interface HSLMemoryListResponse { keys?: string[] }
export interface ResolverCacheClearRequest { domain?: StringValue }
export interface ResolverCacheClearResponse { affected?: number }

// ---- Suspends and dynamic policy conditions (§5.7, §5.8) ----

export interface TupleValues {
  transportid?: StringValue;
  localip?: StringValue;
  remoteip?: StringValue;
  remotemx?: StringValue;
  recipientdomain?: StringValue;
  jobid?: StringValue;
  grouping?: StringValue;
}
export interface SuspendRequest {
  id?: string;
  condition?: Omit<TupleValues, 'localip'> & { localips?: string[]; tag?: StringValue; pickup?: boolean };
  filter?: 'id' | 'condition';
  paging?: { limit?: number };
}
export interface SuspendResponse {
  items?: Array<TupleValues & { source?: 'STATIC' | 'CONCURRENCY' | 'RATE' | 'DYNAMIC'; id?: string; ttl?: number; tag?: StringValue }>;
}
export interface SuspendAddRequest extends TupleValues { id?: string; ttl?: number; tag?: StringValue }
export interface SuspendAddResponse { id?: string }
export interface SuspendUpdateRequest { id?: string; ttl?: number; tag?: StringValue }
export interface SuspendUpdateResponse { affected?: number }
export interface SuspendDeleteRequest { id?: string }
export interface SuspendDeleteResponse { affected?: number }

export interface PolicyThen {
  rate?: { count?: number; interval?: number };
  concurrency?: number;
  tag?: StringValue;
  stop?: boolean;
  properties?: Record<string, string>;
}
export interface PolicyConditionAddRequest { id?: string; fields?: TupleFields; if?: TupleValues; then?: PolicyThen; ttl?: number }
export interface PolicyConditionAddResponse { id?: string }
export interface PolicyConditionUpdateRequest { id?: string; then?: Omit<PolicyThen, 'properties'>; ttl?: number }
export interface PolicyConditionUpdateResponse { affected?: number }
export interface PolicyConditionDeleteRequest { id?: string }
export interface PolicyConditionDeleteResponse { affected?: number }
export interface PolicyConditionResponse { items?: Array<{ id?: string; fields?: TupleFields; if?: TupleValues; then?: PolicyThen; ttl?: number }> }
export interface PolicyRateRefillRequest extends TupleValues { tokens?: number }
export interface PolicyRateRefillResponse { affected?: number }
