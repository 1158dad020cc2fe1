/**
 * Queue Policy documents (IAM policy language, the subset SQS resource policies use): Effect
 * Allow/Deny, Principal ("*", account ids, account-root and user ARNs), Action / NotAction
 * ("sqs:SendMessage", "sqs:*", wildcards), Resource / NotResource (queue ARNs with wildcards) and
 * Conditions with the String and Arn operators on aws:SourceAccount, aws:PrincipalAccount and
 * aws:PrincipalArn. An explicit Deny wins over any Allow.
 */

export interface PolicyRequest {
  /** The SQS action as IAM names it, without the prefix: 'SendMessage' (batches use their base action). */
  action: string;
  accountId: string;
  principalArn: string;
  resourceArn: string;
}

export type Decision = 'allow' | 'deny' | 'none';

interface Statement {
  Sid?: unknown;
  Effect?: unknown;
  Principal?: unknown;
  Action?: unknown;
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Condition?: unknown;
}

const OPERATORS = new Set([
  'StringEquals', 'StringNotEquals', 'StringEqualsIgnoreCase', 'StringNotEqualsIgnoreCase', 'StringLike', 'StringNotLike',
  'ArnEquals', 'ArnNotEquals', 'ArnLike', 'ArnNotLike',
]);

/** Why a policy document cannot be used, or undefined when it can. */
export function policyProblem(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'the policy is not valid JSON.';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'the policy must be a JSON object.';
  const statements = statementsOf(doc as Record<string, unknown>);
  if (statements === undefined) return 'the policy must have a Statement (an object or a list of objects).';
  for (const st of statements) {
    if (st.Effect !== 'Allow' && st.Effect !== 'Deny') return "each statement's Effect must be Allow or Deny.";
    if (st.Principal === undefined) return 'each statement must name a Principal.';
    if ((st.Action === undefined) === (st.NotAction === undefined)) return 'each statement must have exactly one of Action and NotAction.';
    if (st.Condition !== undefined) {
      if (typeof st.Condition !== 'object' || st.Condition === null || Array.isArray(st.Condition)) return 'Condition must be an object.';
      for (const operator of Object.keys(st.Condition)) {
        if (!OPERATORS.has(operator.replace(/IfExists$/, ''))) return `the condition operator ${operator.slice(0, 64)} is not supported.`;
      }
    }
  }
  return undefined;
}

function statementsOf(doc: Record<string, unknown>): Statement[] | undefined {
  const raw = doc.Statement;
  const list = Array.isArray(raw) ? raw : raw === undefined ? undefined : [raw];
  if (!list || !list.every((s) => typeof s === 'object' && s !== null && !Array.isArray(s))) return undefined;
  return list as Statement[];
}

/** The policy's decision for a request: an explicit deny, an allow, or nothing said. */
export function evaluatePolicy(text: string | undefined, request: PolicyRequest): Decision {
  if (text === undefined || text === '') return 'none';
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'none'; // never stored: policies are checked when set
  }
  const statements = typeof doc === 'object' && doc !== null ? statementsOf(doc as Record<string, unknown>) : undefined;
  let allowed = false;
  for (const st of statements ?? []) {
    if (!applies(st, request)) continue;
    if (st.Effect === 'Deny') return 'deny';
    if (st.Effect === 'Allow') allowed = true;
  }
  return allowed ? 'allow' : 'none';
}

function applies(st: Statement, r: PolicyRequest): boolean {
  if (!principalMatches(st.Principal, r)) return false;
  const action = `sqs:${r.action}`;
  if (st.Action !== undefined && !listOf(st.Action).some((a) => glob(a, action, true))) return false;
  if (st.NotAction !== undefined && listOf(st.NotAction).some((a) => glob(a, action, true))) return false;
  if (st.Resource !== undefined && !listOf(st.Resource).some((p) => glob(p, r.resourceArn, false))) return false;
  if (st.NotResource !== undefined && listOf(st.NotResource).some((p) => glob(p, r.resourceArn, false))) return false;
  return conditionsHold(st.Condition, r);
}

function listOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function principalMatches(principal: unknown, r: PolicyRequest): boolean {
  if (principal === '*') return true;
  if (typeof principal !== 'object' || principal === null) return false;
  return listOf((principal as Record<string, unknown>).AWS).some((p) =>
    p === '*' || p === r.accountId || p === `arn:aws:iam::${r.accountId}:root` || p === r.principalArn);
}

/** IAM wildcards: '*' any run, '?' one character. */
function glob(pattern: string, value: string, ignoreCase: boolean): boolean {
  const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${source}$`, ignoreCase ? 'is' : 's').test(value);
}

function contextValue(key: string, r: PolicyRequest): string | undefined {
  switch (key.toLowerCase()) {
    // The caller is the source of its own requests: there is no service in between.
    case 'aws:sourceaccount':
    case 'aws:principalaccount': return r.accountId;
    case 'aws:principalarn': return r.principalArn;
    default: return undefined;
  }
}

function conditionsHold(condition: unknown, r: PolicyRequest): boolean {
  if (condition === undefined) return true;
  if (typeof condition !== 'object' || condition === null) return false;
  for (const [rawOperator, block] of Object.entries(condition as Record<string, unknown>)) {
    if (typeof block !== 'object' || block === null) return false;
    const ifExists = rawOperator.endsWith('IfExists');
    const operator = ifExists ? rawOperator.slice(0, -'IfExists'.length) : rawOperator;
    const negated = operator.includes('Not');
    for (const [key, expected] of Object.entries(block as Record<string, unknown>)) {
      const actual = contextValue(key, r);
      if (actual === undefined) {
        // A missing key satisfies only the negated operators and the IfExists forms.
        if (ifExists || negated) continue;
        return false;
      }
      const any = listOf(expected).some((e) => compare(operator, e, actual));
      if (negated ? any : !any) return false;
    }
  }
  return true;
}

function compare(operator: string, expected: string, actual: string): boolean {
  switch (operator) {
    case 'StringEquals': case 'StringNotEquals': return expected === actual;
    case 'StringEqualsIgnoreCase': case 'StringNotEqualsIgnoreCase': return expected.toLowerCase() === actual.toLowerCase();
    default: return glob(expected, actual, false); // StringLike and the Arn operators (all take wildcards)
  }
}
