// End-to-end redirection with the iptables-legacy backend in test namespaces; the scenarios
// (capture, exclusions, original destination, verify, remove) live in redirect-scenarios.ts.
import { registerRedirectScenarios } from './redirect-scenarios';

registerRedirectScenarios('iptables-legacy');
