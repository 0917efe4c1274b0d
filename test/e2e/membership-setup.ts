/**
 * The set-up the membership e2e files share: whether they can run (a control plane and helm),
 * and, around the tests of one describe, a control plane of its own with a node, the chart
 * installed, and every member's isLeader sampled from the start; all stopped afterwards,
 * whatever part of the start got done.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, inject } from 'vitest';
import type { Helm } from '../chart/helm.js';
import { ControlPlane } from './control-plane.js';
import { Group, type InstallOptions } from './group.js';
import { registerNode } from './kubelet.js';
import { MembershipChecks } from './membership-checks.js';

export interface MembershipSetUp {
  /** The folder of the run dir this file's control plane uses. */
  runDir: string;
  /** Names the file in the step lines MembershipChecks prints. */
  label: string;
  /** Called when the hook runs, after `prepare`: what to install. */
  install: () => InstallOptions;
  /** Runs first in the hook, before the control plane starts (e.g. building an older version). */
  prepare?: () => void;
  hookTimeoutMs?: number;
}

export class MembershipE2e {
  /** Meaningful only when `skipReason` is ''. */
  readonly helm: Helm;
  /** Why this file skips ('' when it runs). */
  readonly skipReason: string;
  private started: { cp?: ControlPlane; group?: Group; checks?: MembershipChecks } = {};

  /** `what` names the file in the line printed when it skips. */
  constructor(what: string) {
    const helm = Group.helm();
    this.helm = helm as Helm;
    this.skipReason = inject('e2eSkipReason') || (typeof helm === 'string' ? helm : '');
    if (this.skipReason) console.log(`[e2e ${what} skipped] ${this.skipReason}`);
  }

  get cp(): ControlPlane {
    return this.need(this.started.cp, 'control plane');
  }

  get group(): Group {
    return this.need(this.started.group, 'group');
  }

  get checks(): MembershipChecks {
    return this.need(this.started.checks, 'membership checks');
  }

  /** Registers the start (beforeAll) and the stop (afterAll) in the enclosing describe. */
  hooks(setUp: MembershipSetUp): void {
    beforeAll(async () => {
      setUp.prepare?.();
      const cp = await ControlPlane.start(join(inject('e2eRunDir'), setUp.runDir));
      this.started.cp = cp;
      await registerNode(cp.admin);
      const group = await Group.install(cp, this.helm, setUp.install());
      this.started.group = group;
      const checks = new MembershipChecks(group, setUp.label);
      this.started.checks = checks;
      checks.sampler.start();
    }, setUp.hookTimeoutMs);

    afterAll(async () => {
      await this.started.checks?.sampler.stop();
      await this.started.group?.stop();
      await this.started.cp?.stop();
    });
  }

  /** Runs a test body; a failure carries the members' logs and the kubelet's actions. */
  step<T>(body: () => Promise<T>): Promise<T> {
    return this.checks.step(body);
  }

  private need<T>(part: T | undefined, what: string): T {
    if (part === undefined) throw new Error(`the membership e2e set-up has no ${what}: its beforeAll did not get that far`);
    return part;
  }
}
