// End-to-end redirection with the iptables-legacy backend in test namespaces (scenarios in redirect-scenarios.ts):
// install/verify/remove, outbound and inbound capture, exclusions, original destination via the addon.
import { registerRedirectScenarios } from './redirect-scenarios';

registerRedirectScenarios('iptables-legacy');
