// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";

/// M-of-N council. A member proposes a call (target contract + calldata); when `threshold` members have
/// approved, the council performs the call, so privileged functions of the registries (pricing policies,
/// certification, dedicated farms, collective cancellation) and of the council itself (members, threshold,
/// the approved zos release per network) only run with the council's approval.
contract Council {
  uint256 public constant MAX_MEMBERS = 32;
  uint256 public constant MAX_TEST_FARMS = 32;
  /// A proposal that has not reached its threshold within this time can no longer be approved.
  uint64 public constant PROPOSAL_TTL = 30 days;

  struct Proposal {
    uint64 id;
    address proposer;
    address target;
    bytes data;
    string description;
    uint64 createdAt;
    uint64 expiresAt;
    uint32 approvals;
    bool executed;
  }

  struct Release {
    string version;
    bytes32 flistHash;
    bool safeToUpgrade;
    uint32[] testFarms;
    uint64 approvedAt;
    uint64 proposalId;
  }

  address[] private members; // at most MAX_MEMBERS
  mapping(address => bool) public isMember;
  uint32 public threshold;

  mapping(uint64 => Proposal) private proposals;
  uint64 public proposalCount;
  mapping(uint64 => mapping(address => bool)) public approvedBy;
  uint64 private executing; // proposal being executed (0 outside execution), recorded on releases

  mapping(bytes32 => Release) private releases;

  event MemberAdded(address indexed member);
  event MemberRemoved(address indexed member);
  event ThresholdChanged(uint32 threshold);
  event ProposalCreated(uint64 indexed id, address indexed proposer, address target, bytes4 selector, string description);
  event ProposalApproved(uint64 indexed id, address indexed member, uint32 approvals);
  event ProposalExecuted(uint64 indexed id);
  event ProposalExecutionFailed(uint64 indexed id, bytes reason);
  event ReleaseApproved(string network, string version, bytes32 flistHash, bool safeToUpgrade, uint32[] testFarms, uint64 proposalId);

  constructor(address[] memory members_, uint32 threshold_) {
    if (members_.length == 0 || members_.length > MAX_MEMBERS) revert InvalidInput("members", "need 1..32 members");
    for (uint256 i = 0; i < members_.length; i++) _addMember(members_[i]);
    _setThreshold(threshold_);
  }

  modifier onlyMember() {
    if (!isMember[msg.sender]) revert Unauthorized("member");
    _;
  }

  modifier onlySelf() {
    if (msg.sender != address(this)) revert Unauthorized("council");
    _;
  }

  // ---- proposals ----

  /// Proposes `target.call(data)`; the proposer's approval is counted at once.
  function propose(address target, bytes calldata data, string calldata description) external onlyMember returns (uint64 id) {
    if (target.code.length == 0) revert InvalidInput("target", "not a contract");
    if (data.length < 4) revert InvalidInput("data", "calldata shorter than a selector");
    if (bytes(description).length > 256) revert InvalidInput("description", "longer than 256 bytes");
    id = ++proposalCount;
    Proposal storage p = proposals[id];
    p.id = id;
    p.proposer = msg.sender;
    p.target = target;
    p.data = data;
    p.description = description;
    p.createdAt = uint64(block.timestamp);
    p.expiresAt = uint64(block.timestamp) + PROPOSAL_TTL;
    emit ProposalCreated(id, msg.sender, target, bytes4(data[:4]), description);
    _approve(p);
  }

  /// Adds the caller's approval; runs the call once the threshold is reached.
  function approve(uint64 id) external onlyMember {
    Proposal storage p = _proposal(id);
    if (p.executed) revert InvalidState("proposal", id, "already executed");
    if (block.timestamp > p.expiresAt) revert InvalidState("proposal", id, "expired");
    if (approvedBy[id][msg.sender]) revert AlreadyExists("approval by this member");
    _approve(p);
  }

  /// Retries the call of a proposal that reached its threshold but whose call failed.
  function execute(uint64 id) external onlyMember {
    Proposal storage p = _proposal(id);
    if (p.executed) revert InvalidState("proposal", id, "already executed");
    if (_countApprovals(id) < threshold) revert InvalidState("proposal", id, "below threshold");
    _execute(p);
  }

  function getProposal(uint64 id) external view returns (Proposal memory) {
    return _proposal(id);
  }

  function getMembers() external view returns (address[] memory) {
    return members;
  }

  // ---- self-governed (only through an executed proposal) ----

  function addMember(address member) external onlySelf {
    if (members.length >= MAX_MEMBERS) revert InvalidState("council", 0, "already 32 members");
    _addMember(member);
  }

  function removeMember(address member) external onlySelf {
    if (!isMember[member]) revert NotFound("member", uint256(uint160(member)));
    if (members.length - 1 < threshold) revert InvalidState("council", 0, "would leave fewer members than the threshold");
    isMember[member] = false;
    uint256 n = members.length;
    for (uint256 i = 0; i < n; i++) {
      if (members[i] == member) {
        members[i] = members[n - 1];
        members.pop();
        break;
      }
    }
    emit MemberRemoved(member);
  }

  function setThreshold(uint32 threshold_) external onlySelf {
    _setThreshold(threshold_);
  }

  /// Records the zos release nodes of `network` may run: version, root hash of the signed zos flist,
  /// whether nodes may switch on their own, and the farms that get it first.
  function setRelease(
    string calldata network,
    string calldata version,
    bytes32 flistHash,
    bool safeToUpgrade,
    uint32[] calldata testFarms
  ) external onlySelf {
    bytes memory n = bytes(network);
    if (n.length == 0 || n.length > 32 || !Text.isSlug(n, false)) revert InvalidInput("network", "1..32 chars of [a-z0-9_-]");
    bytes memory v = bytes(version);
    if (v.length == 0 || v.length > 64 || !Text.isPrintable(v)) revert InvalidInput("version", "1..64 printable chars");
    if (flistHash == bytes32(0)) revert InvalidInput("flistHash", "zero");
    if (testFarms.length > MAX_TEST_FARMS) revert InvalidInput("testFarms", "more than 32");
    Release storage r = releases[keccak256(n)];
    r.version = version;
    r.flistHash = flistHash;
    r.safeToUpgrade = safeToUpgrade;
    r.testFarms = testFarms;
    r.approvedAt = uint64(block.timestamp);
    r.proposalId = executing;
    emit ReleaseApproved(network, version, flistHash, safeToUpgrade, testFarms, executing);
  }

  /// The approved release of `network`; `approvedAt == 0` when none was approved yet.
  function getRelease(string calldata network) external view returns (Release memory) {
    return releases[keccak256(bytes(network))];
  }

  // ---- internals ----

  function _proposal(uint64 id) private view returns (Proposal storage p) {
    p = proposals[id];
    if (p.id == 0) revert NotFound("proposal", id);
  }

  function _approve(Proposal storage p) private {
    approvedBy[p.id][msg.sender] = true;
    p.approvals += 1;
    emit ProposalApproved(p.id, msg.sender, p.approvals);
    if (_countApprovals(p.id) >= threshold) _execute(p);
  }

  /// Approvals of current members only (a removed member's approval no longer counts).
  function _countApprovals(uint64 id) private view returns (uint32 n) {
    uint256 len = members.length;
    for (uint256 i = 0; i < len; i++) if (approvedBy[id][members[i]]) n++;
  }

  function _execute(Proposal storage p) private {
    p.executed = true;
    executing = p.id;
    (bool ok, bytes memory reason) = p.target.call(p.data);
    executing = 0;
    if (ok) {
      emit ProposalExecuted(p.id);
    } else {
      p.executed = false;
      emit ProposalExecutionFailed(p.id, reason);
    }
  }

  function _addMember(address member) private {
    if (member == address(0)) revert InvalidInput("member", "zero address");
    if (isMember[member]) revert AlreadyExists("member");
    isMember[member] = true;
    members.push(member);
    emit MemberAdded(member);
  }

  function _setThreshold(uint32 threshold_) private {
    if (threshold_ == 0 || threshold_ > members.length) revert InvalidInput("threshold", "must be 1..number of members");
    threshold = threshold_;
    emit ThresholdChanged(threshold_);
  }
}
