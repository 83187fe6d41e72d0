// End-to-end redirection with the iptables (nf_tables) backend in test namespaces; the scenarios
// (capture, exclusions, original destination, verify, remove) live in redirect-scenarios.ts.
import { registerRedirectScenarios } from './redirect-scenarios';

registerRedirectScenarios('iptables');
