// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Shared types and errors of the zos ledger. Every revert is one of these custom errors, so the TypeScript
// client (src/ledger/errors.ts) maps each to a stable ZosError code instead of showing a raw revert.

/// The named thing (`what` = "twin", "farm", "node", "contract", "policy", "proposal", ...) does not exist.
error NotFound(string what, uint256 id);
/// The caller's twin does not own the object (`what`, `id`).
error NotOwner(string what, uint256 id);
/// The calling account has no twin; create one first.
error NoTwin(address account);
/// The caller lacks a role: "council", "member", "node", "deployer", "contracts", "billing", "faucet".
error Unauthorized(string role);
/// A unique name (farm name, gateway name) is already registered.
error NameTaken(string name);
/// The farm has fewer free public IPs than requested.
error NoIpsFree(uint32 farmId, uint32 requested, uint32 free);
/// The account's token balance is below what the operation needs.
error InsufficientFunds(uint256 needed, uint256 available);
/// An argument is malformed: `field` names it, `reason` says what is wrong.
error InvalidInput(string field, string reason);
/// The thing already exists (a twin for this account, an IP on the farm, a contract with this hash on the node).
error AlreadyExists(string what);
/// The object is in a state that does not allow the operation (`reason` says which).
error InvalidState(string what, uint256 id, string reason);

/// Capacity in bytes (hru, sru, mru) and logical cores (cru).
struct Resources {
  uint64 hru;
  uint64 sru;
  uint64 cru;
  uint64 mru;
}

enum ContractKind {
  Node,
  Name,
  Rent
}

enum ContractState {
  Created,
  GracePeriod,
  Deleted
}

enum DeleteCause {
  None,
  CanceledByUser,
  OutOfFunds,
  CanceledByCouncil
}

enum Power {
  Up,
  Down
}

enum NodeCertification {
  Diy,
  Certified
}

enum FarmCertification {
  NotCertified,
  Gold
}

/// What billing needs to know of a contract (GridContracts.billingTerms).
struct ContractTerms {
  uint64 id;
  uint32 twinId;
  ContractKind kind;
  ContractState state;
  uint32 nodeId;
  uint32 farmId;
  uint32 publicIps;
  uint64 rentContractId;
  ContractState rentState;
  DeleteCause rentCause;
  uint64 solutionProviderId;
  uint64 graceStartedAt;
}

/// Wiring shared by every registry: the deployer wires the addresses once (`init`), after which only the
/// council (an M-of-N contract) may call privileged functions.
abstract contract Wired {
  address public immutable deployer;
  address public council;
  bool public initialized;

  constructor() {
    deployer = msg.sender;
  }

  modifier onlyCouncil() {
    if (msg.sender != council) revert Unauthorized("council");
    _;
  }

  modifier onlyDeployerOnce() {
    if (msg.sender != deployer) revert Unauthorized("deployer");
    if (initialized) revert InvalidState("wiring", 0, "already initialized");
    initialized = true;
    _;
  }
}

library Text {
  /// True when every byte of `s` is in [a-z0-9_-] (and, with `upper`, also [A-Z]).
  function isSlug(bytes memory s, bool upper) internal pure returns (bool) {
    for (uint256 i = 0; i < s.length; i++) {
      bytes1 c = s[i];
      bool ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2d || c == 0x5f;
      if (!ok && upper) ok = c >= 0x41 && c <= 0x5a;
      if (!ok) return false;
    }
    return true;
  }

  /// True when every byte is printable ASCII without space (0x21..0x7e).
  function isPrintable(bytes memory s) internal pure returns (bool) {
    for (uint256 i = 0; i < s.length; i++) {
      bytes1 c = s[i];
      if (c < 0x21 || c > 0x7e) return false;
    }
    return true;
  }

  /// keccak256 of the ASCII-lowercased string: the key under which unique names are registered.
  function foldedKey(bytes memory s) internal pure returns (bytes32) {
    bytes memory out = new bytes(s.length);
    for (uint256 i = 0; i < s.length; i++) {
      bytes1 c = s[i];
      out[i] = (c >= 0x41 && c <= 0x5a) ? bytes1(uint8(c) + 32) : c;
    }
    return keccak256(out);
  }
}
