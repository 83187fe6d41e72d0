// PeerAuthentication rules beyond the schema, following Istio's validation: port-level mTLS only
// for workload-scoped policies (a selector with labels), non-empty, with valid port numbers.
import type { ReportIssue } from '../../config/kind';
import { isValidPort, reportAt } from '../common';
import type { PeerAuthenticationSpec } from './schema';

export function checkPeerAuthentication(spec: PeerAuthenticationSpec, report: ReportIssue): void {
  const portLevel = spec.portLevelMtls;
  if (!portLevel) return;
  const emptySelector = !spec.selector?.matchLabels || Object.keys(spec.selector.matchLabels).length === 0;
  // A mesh- or namespace-wide policy applies to workloads with different ports, so ports mean nothing there.
  if (emptySelector && Object.keys(portLevel).length > 0) {
    reportAt(report, ['portLevelMtls'], 'portLevelMtls requires a workload selector (mesh/namespace peer authentication cannot have port level mTLS)', Object.keys(portLevel), 'selector-required');
  }
  if (Object.keys(portLevel).length === 0) {
    reportAt(report, ['portLevelMtls'], 'portLevelMtls, if defined, must have at least one element', portLevel, 'empty-port-level-mtls');
  }
  for (const key of Object.keys(portLevel)) {
    const port = Number(key);
    if (!isValidPort(port)) reportAt(report, ['portLevelMtls', key], 'port must be in the range 1..65535', port, 'port-range');
  }
}
