import test from 'ava';
import { formatIssue, formatPath } from './issue';

test('an issue names file, document, resource, field path, message and value', (t) => {
  const line = formatIssue({
    severity: 'error', code: 'invalid-value', file: '/etc/mesh/ratings.yaml', document: 3, kind: 'VirtualService',
    namespace: 'default', name: 'ratings', path: 'spec.http[0].timeout', message: 'not a duration', value: '5 seconds',
  });
  t.is(line, '/etc/mesh/ratings.yaml, document 3 (VirtualService default/ratings), spec.http[0].timeout: not a duration (got "5 seconds")');
});

test('a value the message already states is not repeated', (t) => {
  const line = formatIssue({ severity: 'error', code: 'weights-sum', path: 'spec.http[0].route[1].weight', message: 'weights must sum to 100, got 90', value: 90 });
  t.is(line, 'spec.http[0].route[1].weight: weights must sum to 100, got 90');
});

test('paths use dots for names, brackets for indexes and quoted keys for odd names', (t) => {
  t.is(formatPath(['spec', 'http', 0, 'headers', 'request', 'set', 'x-user']), 'spec.http[0].headers.request.set["x-user"]');
});
