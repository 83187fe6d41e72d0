// Tests of the shared value checks: Go-style durations, RE2-compatible regexes and their JavaScript
// full-match form, host/IP syntax and Kubernetes label rules.
import test from 'ava';
import {
  checkRegex,
  compileFullMatchRegex,
  isFqdn,
  isIp,
  isIpOrCidr,
  isWildcardDomain,
  labelProblem,
  namespacedHostProblem,
  parseDurationMs,
  severityOf,
} from './common';

test('parseDurationMs reads Go-style durations as Istio accepts them', (t) => {
  t.is(parseDurationMs('1h'), 3_600_000);
  t.is(parseDurationMs('10s'), 10_000);
  t.is(parseDurationMs('0.5s'), 500);
  t.is(parseDurationMs('100ms'), 100);
  t.is(parseDurationMs('1m30s'), 90_000);
  t.is(parseDurationMs('1h2m3s4ms'), 3_723_004);
  t.is(parseDurationMs('250us'), 0.25);
  t.is(parseDurationMs('0'), 0);
  t.is(parseDurationMs('-2s'), -2000);
});

test('parseDurationMs rejects numbers without units and other text', (t) => {
  for (const text of ['', '10', '1.5', 's', '1h2', '10 s', '1d', 'PT10S', '--1s']) {
    t.is(parseDurationMs(text), undefined, text);
  }
});

test('checkRegex accepts RE2 patterns JavaScript can run, including leading flags and (?P<name>)', (t) => {
  for (const pattern of ['^/api(/.*)?$', '(?i)^/Admin', '(?P<version>v[0-9]+)', '[]a]+', '\\pL+', '\\Ahttps?://\\z', 'a{2,5}']) {
    t.is(checkRegex(pattern), undefined, pattern);
  }
});

test('checkRegex rejects lookaround and backreferences that RE2 (Envoy) refuses', (t) => {
  t.regex(checkRegex('^/(?!admin)') ?? '', /lookahead/);
  t.regex(checkRegex('foo(?=bar)') ?? '', /lookahead/);
  t.regex(checkRegex('(?<!x)y') ?? '', /lookbehind/);
  t.regex(checkRegex('(a)\\1') ?? '', /backreference/);
  t.regex(checkRegex('(?<n>a)\\k<n>') ?? '', /backreference/);
  t.regex(checkRegex('(?>a)') ?? '', /atomic/);
});

test('checkRegex rejects what JavaScript cannot compile or would read differently', (t) => {
  t.regex(checkRegex('[a-') ?? '', /invalid regex/);
  t.regex(checkRegex('a**') ?? '', /invalid regex/);
  t.regex(checkRegex('(?i:abc)') ?? '', /inline flags/);
  t.regex(checkRegex('[[:alpha:]]') ?? '', /POSIX/);
  t.regex(checkRegex('x'.repeat(1025)) ?? '', /too large/);
  t.regex(checkRegex('') ?? '', /empty/);
});

test('compileFullMatchRegex matches the whole value, as Envoy safe_regex does', (t) => {
  const re = compileFullMatchRegex('/api/v[0-9]+');
  t.true(re.test('/api/v2'));
  t.false(re.test('/api/v2/extra'));
  t.true(compileFullMatchRegex('(?i)abc').test('ABC'));
  t.true(compileFullMatchRegex('(?P<x>a)b').test('ab'));
  t.throws(() => compileFullMatchRegex('(?=a)'));
});

test('host and address syntax follows Istio', (t) => {
  t.true(isWildcardDomain('*.example.com'));
  t.true(isWildcardDomain('*'));
  t.true(isWildcardDomain('reviews'));
  t.false(isWildcardDomain('a.*.com'));
  t.false(isWildcardDomain('example.123'));
  t.true(isFqdn('istio.io.'));
  t.false(isFqdn('*.istio.io'));
  t.true(isIp('2001:db8::1'));
  t.true(isIp('::ffff:10.0.0.1'));
  t.false(isIp('10.0.0.256'));
  t.true(isIpOrCidr('10.0.0.0/8'));
  t.false(isIpOrCidr('10.0.0.0/33'));
  t.is(namespacedHostProblem('ns/*.example.com', false), undefined);
  t.is(namespacedHostProblem('~/*', false), undefined);
  t.regex(namespacedHostProblem('~/*', true) ?? '', /invalid namespace/);
});

test('label rules: Kubernetes syntax, no wildcards', (t) => {
  t.is(labelProblem('app.kubernetes.io/name', 'web'), undefined);
  t.is(labelProblem('version', ''), undefined);
  t.regex(labelProblem('app', 'a*') ?? '', /wildcard/);
  t.regex(labelProblem('-app', 'x') ?? '', /label key name/);
  t.regex(labelProblem('app', 'x'.repeat(64)) ?? '', /label value/);
});

test('severityOf maps warning codes to warnings and everything else to errors', (t) => {
  t.is(severityOf('per-try-timeout-exceeds-timeout'), 'warning');
  t.is(severityOf('deprecated-field'), 'warning');
  t.is(severityOf('weights-sum'), 'error');
  t.is(severityOf(undefined), 'error');
});
