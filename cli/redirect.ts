// `meshctl redirect install|verify|remove`: manage the agent's traffic redirection rules by hand,
// and show whether the rules in force match the plan the agent would install.
import { CommandError, createCommandRunner } from '../agent/redirect/command-runner';
import type { RedirectBackend } from '../agent/redirect/redirect-backend';
import { createRedirectPlan, describeRedirectPlan, RedirectPlanError, type RedirectPlan } from '../agent/redirect/redirect-plan';
import { installedBackends, selectBackend, type BackendChoice } from '../agent/redirect/select-backend';

export type RedirectAction = 'install' | 'verify' | 'remove';

export interface RedirectCommandOptions {
  /** Default `auto`: the backend holding the mesh rules already, else the one this host uses. */
  backend?: BackendChoice;
  /** Run every firewall command inside this network namespace (`ip netns exec`). */
  netns?: string;
  outboundPort?: number;
  inboundPort?: number;
  /** Required for install and verify: the uid the agent runs as, never captured. */
  agentUid?: number;
  excludeOutboundPorts?: number[];
  excludeOutboundCidrs?: string[];
  /** `'*'` (default) or the list of inbound ports to capture. */
  inboundPorts?: number[] | '*';
  excludeInboundPorts?: number[];
  /** Capture IPv6 too (default true: uncaptured IPv6 would bypass mesh policy). */
  ipv6?: boolean;
}

export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes: 0 done / rules match, 1 rules differ or a command failed, 2 invalid options. */
export async function redirectCommand(
  action: RedirectAction,
  options: RedirectCommandOptions,
  io: CommandIo,
): Promise<number> {
  try {
    const runner = createCommandRunner({ netns: options.netns });
    const where = options.netns ? ` in network namespace ${options.netns}` : '';
    const choice = options.backend ?? 'auto';

    if (action === 'remove') {
      // On auto, remove from every backend holding mesh rules: leftovers of another backend
      // would keep capturing traffic after an operator believed redirection was gone.
      const backends: RedirectBackend[] =
        choice === 'auto' ? await installedBackends(runner) : [(await selectBackend(runner, choice)).backend];
      for (const backend of backends) {
        await backend.remove();
        io.stdout(`removed the mesh redirection rules (${backend.name})${where}\n`);
      }
      if (backends.length === 0) io.stdout(`no mesh redirection rules found${where}; nothing to remove\n`);
      return 0;
    }

    const plan = planFromOptions(options);
    const { backend, reason } = await selectBackend(runner, choice);
    if (action === 'install') {
      await backend.install(plan);
      io.stdout(`installed the mesh redirection rules with ${reason}${where}\n${indent(describeRedirectPlan(plan))}\n`);
      return 0;
    }

    const result = await backend.verify(plan);
    if (result.ok) {
      io.stdout(`the redirection rules in force match the plan (${reason})${where}\n`);
      return 0;
    }
    const lines = [
      `the redirection rules in force do NOT match the plan (${reason})${where}: ` +
        `${result.missing.length} missing, ${result.unexpected.length} unexpected`,
    ];
    if (result.missing.length > 0) {
      lines.push('missing (planned, not in force):', ...result.missing.map((rule) => `  - ${rule}`));
    }
    if (result.unexpected.length > 0) {
      lines.push('unexpected (in force, not planned):', ...result.unexpected.map((rule) => `  + ${rule}`));
    }
    lines.push('`meshctl redirect install` with the same options makes them match again.');
    io.stdout(`${lines.join('\n')}\n`);
    return 1;
  } catch (error) {
    if (error instanceof RedirectPlanError) {
      io.stderr(`meshctl redirect ${action}: invalid option ${error.message}\n`);
      return 2;
    }
    if (error instanceof CommandError) {
      io.stderr(`meshctl redirect ${action}: ${error.message}\n`);
      return 1;
    }
    io.stderr(`meshctl redirect ${action}: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

function planFromOptions(options: RedirectCommandOptions): RedirectPlan {
  if (options.agentUid === undefined) {
    throw new RedirectPlanError(
      'agentUid',
      'is required: the uid mesh-agent runs as, whose own connections must not be captured (they would loop)',
    );
  }
  return createRedirectPlan({
    agentUid: options.agentUid,
    outboundPort: options.outboundPort,
    inboundPort: options.inboundPort,
    excludeOutboundPorts: options.excludeOutboundPorts,
    excludeOutboundCidrs: options.excludeOutboundCidrs,
    inboundPorts: options.inboundPorts,
    excludeInboundPorts: options.excludeInboundPorts,
    ipv6: options.ipv6,
  });
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
