/**
 * etcd-raft's confchange testdata (confchange/testdata/*.txt, etcd-io/raft v3.7 line): each
 * scenario is a sequence of steps run on one Changer, whose lastIndex starts at 0 and grows
 * by one per step (failed ones too). A step is `simple`, `enter-joint` (with autoLeave) or
 * `leave-joint`, with changes `vN` (add voter), `lN` (add learner), `rN` (remove), `uN`
 * (update); id 0 stands for etcd's ignored node 0. `want` is etcd's expected output: the
 * configuration and one progress line per member, or the error.
 */
export interface ConfChangeStep {
  readonly cmd: 'simple' | 'enter-joint' | 'leave-joint';
  readonly autoLeave?: boolean;
  readonly changes: string;
  readonly want: string;
}

export interface ConfChangeScenario {
  readonly file: string;
  readonly steps: readonly ConfChangeStep[];
}

export const confChangeScenarios: readonly ConfChangeScenario[] = [
  {
    file: 'joint_autoleave.txt',
    steps: [
      // Test the autoleave argument to EnterJoint. It defaults to false in the datadriven tests. The flag has no associated semantics in this package, it is simply passed through.
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      // Autoleave is reflected in the config.
      { cmd: 'enter-joint', autoLeave: true, changes: 'v2 v3', want: 'voters=(1 2 3)&&(1) autoleave\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=1' },
      // Can't enter-joint twice, even if autoleave changes.
      { cmd: 'enter-joint', autoLeave: false, changes: '', want: 'config is already joint' },
      { cmd: 'leave-joint', changes: '', want: 'voters=(1 2 3)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=1' },
    ],
  },
  {
    file: 'joint_idempotency.txt',
    steps: [
      // Verify that operations upon entering the joint state are idempotent, i.e. removing an absent node is fine, etc.
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'enter-joint', changes: 'r1 r2 r9 v2 v3 v4 v2 v3 v4 l2 l2 r4 r4 l1 l1', want: 'voters=(3)&&(1) learners=(2) learners_next=(1)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1 learner\n3: StateProbe match=0 next=1' },
      { cmd: 'leave-joint', changes: '', want: 'voters=(3) learners=(1 2)\n1: StateProbe match=0 next=1 learner\n2: StateProbe match=0 next=1 learner\n3: StateProbe match=0 next=1' },
    ],
  },
  {
    file: 'joint_learners_next.txt',
    steps: [
      // Verify that when a voter is demoted in a joint config, it will show up in learners_next until the joint config is left, and only then will the progress turn into that of a learner, without resetting the progress. Note that this last fact is verified by `next`, which can tell us which "round" the progress was originally created in.
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'enter-joint', changes: 'v2 l1', want: 'voters=(2)&&(1) learners_next=(1)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1' },
      { cmd: 'leave-joint', changes: '', want: 'voters=(2) learners=(1)\n1: StateProbe match=0 next=1 learner\n2: StateProbe match=0 next=1' },
    ],
  },
  {
    file: 'joint_safety.txt',
    steps: [
      { cmd: 'leave-joint', changes: '', want: "can't leave a non-joint config" },
      { cmd: 'enter-joint', changes: '', want: "can't make a zero-voter config joint" },
      { cmd: 'enter-joint', changes: 'v1', want: "can't make a zero-voter config joint" },
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=3' },
      { cmd: 'leave-joint', changes: '', want: "can't leave a non-joint config" },
      // Can enter into joint config.
      { cmd: 'enter-joint', changes: '', want: 'voters=(1)&&(1)\n1: StateProbe match=0 next=3' },
      { cmd: 'enter-joint', changes: '', want: 'config is already joint' },
      { cmd: 'leave-joint', changes: '', want: 'voters=(1)\n1: StateProbe match=0 next=3' },
      { cmd: 'leave-joint', changes: '', want: "can't leave a non-joint config" },
      // Can enter again, this time with some ops.
      { cmd: 'enter-joint', changes: 'r1 v2 v3 l4', want: 'voters=(2 3)&&(1) learners=(4)\n1: StateProbe match=0 next=3\n2: StateProbe match=0 next=9\n3: StateProbe match=0 next=9\n4: StateProbe match=0 next=9 learner' },
      { cmd: 'enter-joint', changes: '', want: 'config is already joint' },
      { cmd: 'enter-joint', changes: 'v12', want: 'config is already joint' },
      { cmd: 'simple', changes: 'l15', want: "can't apply simple config change in joint config" },
      { cmd: 'leave-joint', changes: '', want: 'voters=(2 3) learners=(4)\n2: StateProbe match=0 next=9\n3: StateProbe match=0 next=9\n4: StateProbe match=0 next=9 learner' },
      { cmd: 'simple', changes: 'l9', want: 'voters=(2 3) learners=(4 9)\n2: StateProbe match=0 next=9\n3: StateProbe match=0 next=9\n4: StateProbe match=0 next=9 learner\n9: StateProbe match=0 next=14 learner' },
    ],
  },
  {
    file: 'simple_idempotency.txt',
    steps: [
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v2', want: 'voters=(1 2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'l1', want: 'voters=(2) learners=(1)\n1: StateProbe match=0 next=1 learner\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'l1', want: 'voters=(2) learners=(1)\n1: StateProbe match=0 next=1 learner\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'r1', want: 'voters=(2)\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'r1', want: 'voters=(2)\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'v3', want: 'voters=(2 3)\n2: StateProbe match=0 next=2\n3: StateProbe match=0 next=7' },
      { cmd: 'simple', changes: 'r3', want: 'voters=(2)\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'r3', want: 'voters=(2)\n2: StateProbe match=0 next=2' },
      { cmd: 'simple', changes: 'r4', want: 'voters=(2)\n2: StateProbe match=0 next=2' },
    ],
  },
  {
    file: 'simple_promote_demote.txt',
    steps: [
      // Set up three voters for this test.
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v2', want: 'voters=(1 2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v3', want: 'voters=(1 2 3)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=2' },
      // Can atomically demote and promote without a hitch. This is pointless, but possible.
      { cmd: 'simple', changes: 'l1 v1', want: 'voters=(1 2 3)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=2' },
      // Can demote a voter.
      { cmd: 'simple', changes: 'l2', want: 'voters=(1 3) learners=(2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1 learner\n3: StateProbe match=0 next=2' },
      // Can atomically promote and demote the same voter. This is pointless, but possible.
      { cmd: 'simple', changes: 'v2 l2', want: 'voters=(1 3) learners=(2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1 learner\n3: StateProbe match=0 next=2' },
      // Can promote a voter.
      { cmd: 'simple', changes: 'v2', want: 'voters=(1 2 3)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1\n3: StateProbe match=0 next=2' },
    ],
  },
  {
    file: 'simple_safety.txt',
    steps: [
      { cmd: 'simple', changes: 'l1', want: 'removed all voters' },
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v2 l3', want: 'voters=(1 2) learners=(3)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=2\n3: StateProbe match=0 next=2 learner' },
      { cmd: 'simple', changes: 'r1 v5', want: 'more than one voter changed without entering joint config' },
      { cmd: 'simple', changes: 'r1 r2', want: 'removed all voters' },
      { cmd: 'simple', changes: 'v3 v4', want: 'more than one voter changed without entering joint config' },
      { cmd: 'simple', changes: 'l1 v5', want: 'more than one voter changed without entering joint config' },
      { cmd: 'simple', changes: 'l1 l2', want: 'removed all voters' },
      { cmd: 'simple', changes: 'l2 l3 l4 l5', want: 'voters=(1) learners=(2 3 4 5)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=2 learner\n3: StateProbe match=0 next=2 learner\n4: StateProbe match=0 next=8 learner\n5: StateProbe match=0 next=8 learner' },
      { cmd: 'simple', changes: 'r1', want: 'removed all voters' },
      { cmd: 'simple', changes: 'r2 r3 r4 r5', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
    ],
  },
  {
    file: 'update.txt',
    steps: [
      // Nobody cares about ConfChangeUpdateNode, but at least use it once. It is used by etcd as a convenient way to pass a blob through their conf change machinery that updates information tracked outside of raft.
      { cmd: 'simple', changes: 'v1', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'v2 u1', want: 'voters=(1 2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1' },
      { cmd: 'simple', changes: 'u1 u2 u3 u1 u2 u3', want: 'voters=(1 2)\n1: StateProbe match=0 next=1\n2: StateProbe match=0 next=1' },
    ],
  },
  {
    file: 'zero.txt',
    steps: [
      // NodeId zero is ignored.
      { cmd: 'simple', changes: 'v1 r0 v0 l0', want: 'voters=(1)\n1: StateProbe match=0 next=1' },
    ],
  },
];
