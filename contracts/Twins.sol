// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";

/// Twins: one ledger identity per EVM account, with the relay(s) it can be reached through and the
/// secp256k1 public key peers encrypt messages to.
contract Twins {
  uint256 public constant MAX_RELAY = 1024;

  struct Twin {
    uint32 id;
    address account;
    /// Relay addresses joined with '_' as on TFChain; printable ASCII without spaces (hosts, host:port, ws:// URLs).
    string relay;
    /// Encryption public key: empty, 33 (compressed) or 65 (uncompressed) bytes of secp256k1.
    bytes pk;
    uint64 createdAt;
    uint64 updatedAt;
  }

  mapping(uint32 => Twin) private twins;
  mapping(address => uint32) public twinIdOf;
  uint32 public twinCount;

  event TwinStored(uint32 indexed twinId, address indexed account, string relay, bytes pk);
  event TwinUpdated(uint32 indexed twinId, address indexed account, string relay, bytes pk);

  function createTwin(string calldata relay, bytes calldata pk) external returns (uint32 id) {
    if (twinIdOf[msg.sender] != 0) revert AlreadyExists("twin for this account");
    _check(relay, pk);
    id = ++twinCount;
    twins[id] = Twin(id, msg.sender, relay, pk, uint64(block.timestamp), uint64(block.timestamp));
    twinIdOf[msg.sender] = id;
    emit TwinStored(id, msg.sender, relay, pk);
  }

  function updateTwin(string calldata relay, bytes calldata pk) external {
    uint32 id = twinIdOf[msg.sender];
    if (id == 0) revert NoTwin(msg.sender);
    _check(relay, pk);
    Twin storage t = twins[id];
    t.relay = relay;
    t.pk = pk;
    t.updatedAt = uint64(block.timestamp);
    emit TwinUpdated(id, msg.sender, relay, pk);
  }

  function getTwin(uint32 id) external view returns (Twin memory) {
    Twin storage t = twins[id];
    if (t.id == 0) revert NotFound("twin", id);
    return t;
  }

  function accountOf(uint32 id) external view returns (address) {
    address a = twins[id].account;
    if (a == address(0)) revert NotFound("twin", id);
    return a;
  }

  /// The twin id of `account`; reverts with NoTwin when it has none.
  function requireTwin(address account) external view returns (uint32 id) {
    id = twinIdOf[account];
    if (id == 0) revert NoTwin(account);
  }

  function _check(string calldata relay, bytes calldata pk) private pure {
    bytes memory r = bytes(relay);
    if (r.length > MAX_RELAY) revert InvalidInput("relay", "longer than 1024 bytes");
    if (!Text.isPrintable(r)) revert InvalidInput("relay", "must be printable ASCII without spaces");
    if (pk.length != 0 && pk.length != 33 && pk.length != 65) revert InvalidInput("pk", "must be 0, 33 or 65 bytes of secp256k1 public key");
  }
}
