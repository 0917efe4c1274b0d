import { describe, expect, it } from 'vitest';
import { isMembershipMember } from './in-cluster-membership.js';

describe('isMembershipMember', () => {
  it('is true only for a member offering membership(), proposeConfChange() and onMembershipChange()', () => {
    const fn = (): void => {};
    expect(isMembershipMember({ membership: fn, proposeConfChange: fn, onMembershipChange: fn })).toBe(true);
    expect(isMembershipMember({ membership: fn, proposeConfChange: fn })).toBe(false);
    expect(isMembershipMember({})).toBe(false);
    expect(isMembershipMember(null)).toBe(false);
  });
});
