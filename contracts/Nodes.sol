// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";
import "./Interfaces.sol";

/// Nodes: registered by the node itself (its own twin), in a farm; capacity, location, public config (set by
/// the farmer), certification (council), power target (farmer) and state (node), uptime reports (node).
contract Nodes is Wired {
  uint256 public constant MAX_PAGE = 100;

  struct Location {
    string city;
    string country;
    /// Micro-degrees (degrees × 1e6).
    int32 latitude;
    int32 longitude;
  }

  /// What makes a node an access node or gateway; empty strings mean unset.
  struct PublicConfig {
    string ip4; // "a.b.c.d/nn"
    string gw4;
    string ip6; // "x::y/nn"
    string gw6;
    string domain;
  }

  struct NodeInput {
    uint32 farmId;
    Resources resources;
    Location location;
    string serial;
    bool secureBoot;
    bool virtualized;
  }

  struct Node {
    uint32 id;
    uint32 farmId;
    uint32 twinId;
    Resources resources;
    Location location;
    string serial;
    bool secureBoot;
    bool virtualized;
    NodeCertification certification;
    Power powerTarget;
    Power powerState;
    PublicConfig publicConfig;
    /// Farmer's monthly fee for renting the node whole, in mUSD (0 = none).
    uint64 extraFeeMusd;
    uint64 createdAt;
    uint64 updatedAt;
    uint64 powerChangedAt;
    uint64 lastUptimeReport;
    uint64 uptime;
    bool deleted;
  }

  ITwins public twins;
  IFarms public farms;
  IGridContracts public gridContracts;

  mapping(uint32 => Node) private nodes;
  mapping(uint32 => uint32) public nodeIdByTwin;
  uint32 public nodeCount;
  mapping(uint32 => mapping(uint32 => uint32)) private farmNodes; // farm => index => node (append-only)
  mapping(uint32 => uint32) public farmNodeCount;

  event NodeStored(uint32 indexed nodeId, uint32 indexed farmId, uint32 indexed twinId, Resources resources);
  event NodeUpdated(uint32 indexed nodeId, uint32 indexed farmId, Resources resources);
  event NodeDeleted(uint32 indexed nodeId, uint32 indexed farmId);
  event NodePublicConfigStored(uint32 indexed nodeId, PublicConfig config);
  event NodeCertificationSet(uint32 indexed nodeId, NodeCertification certification);
  event NodeUptimeReported(uint32 indexed nodeId, uint64 timestamp, uint64 uptime);
  event PowerTargetChanged(uint32 indexed nodeId, Power target);
  event PowerStateChanged(uint32 indexed nodeId, Power state);
  event NodeExtraFeeSet(uint32 indexed nodeId, uint64 extraFeeMusd);

  function init(address council_, ITwins twins_, IFarms farms_, IGridContracts gridContracts_) external onlyDeployerOnce {
    council = council_;
    twins = twins_;
    farms = farms_;
    gridContracts = gridContracts_;
  }

  // ---- node (its own twin) ----

  function createNode(NodeInput calldata input) external returns (uint32 id) {
    uint32 twinId = twins.requireTwin(msg.sender);
    if (nodeIdByTwin[twinId] != 0) revert AlreadyExists("node for this twin");
    farms.farmTwin(input.farmId); // reverts NotFound for an unknown farm
    _checkInput(input);
    id = ++nodeCount;
    Node storage n = nodes[id];
    n.id = id;
    n.twinId = twinId;
    n.createdAt = uint64(block.timestamp);
    n.powerChangedAt = uint64(block.timestamp);
    _apply(n, input);
    nodeIdByTwin[twinId] = id;
    farmNodes[input.farmId][farmNodeCount[input.farmId]++] = id;
    emit NodeStored(id, input.farmId, twinId, input.resources);
  }

  function updateNode(NodeInput calldata input) external {
    Node storage n = _myNode();
    if (input.farmId != n.farmId) {
      farms.farmTwin(input.farmId);
      (uint32 active, uint64 rent) = gridContracts.nodeLoad(n.id);
      if (active != 0 || rent != 0) revert InvalidState("node", n.id, "has active contracts; cannot change farm");
      farmNodes[input.farmId][farmNodeCount[input.farmId]++] = n.id;
    }
    _checkInput(input);
    _apply(n, input);
    emit NodeUpdated(n.id, input.farmId, input.resources);
  }

  function setPowerState(Power state) external {
    Node storage n = _myNode();
    n.powerState = state;
    n.powerChangedAt = uint64(block.timestamp);
    emit PowerStateChanged(n.id, state);
  }

  /// Uptime in seconds since boot; `timestampHint` must be within 60 s of the chain time.
  function reportUptime(uint64 uptime, uint64 timestampHint) external {
    Node storage n = _myNode();
    uint256 nowTs = block.timestamp;
    if (timestampHint + 60 < nowTs || timestampHint > nowTs + 60) revert InvalidInput("timestampHint", "more than 60 s away from chain time");
    n.lastUptimeReport = uint64(nowTs);
    n.uptime = uptime;
    emit NodeUptimeReported(n.id, uint64(nowTs), uptime);
  }

  // ---- farmer ----

  function setPublicConfig(uint32 nodeId, PublicConfig calldata config) external {
    Node storage n = _farmerNode(nodeId);
    _checkField(config.ip4, 18, "ip4");
    _checkField(config.gw4, 15, "gw4");
    _checkField(config.ip6, 43, "ip6");
    _checkField(config.gw6, 39, "gw6");
    _checkField(config.domain, 128, "domain");
    if (bytes(config.ip4).length == 0 && bytes(config.ip6).length == 0 && bytes(config.domain).length == 0) {
      delete n.publicConfig;
    } else {
      if (bytes(config.ip4).length == 0 || bytes(config.gw4).length == 0) revert InvalidInput("ip4", "a public config needs ip4 and gw4");
      n.publicConfig = config;
    }
    n.updatedAt = uint64(block.timestamp);
    emit NodePublicConfigStored(nodeId, n.publicConfig);
  }

  /// Asks the node to power up or down; Down is refused while the node carries active contracts.
  function setPowerTarget(uint32 nodeId, Power target) external {
    Node storage n = _farmerNode(nodeId);
    if (target == Power.Down) {
      (uint32 active, uint64 rent) = gridContracts.nodeLoad(nodeId);
      if (active != 0 || rent != 0) revert InvalidState("node", nodeId, "has active contracts; cannot power down");
    }
    n.powerTarget = target;
    emit PowerTargetChanged(nodeId, target);
  }

  /// Sets the monthly fee (mUSD) a renter pays the farmer on top of the rent; only while the node is empty.
  function setExtraFee(uint32 nodeId, uint64 extraFeeMusd) external {
    Node storage n = _farmerNode(nodeId);
    (uint32 active, uint64 rent) = gridContracts.nodeLoad(nodeId);
    if (active != 0 || rent != 0) revert InvalidState("node", nodeId, "has active contracts; cannot change its fee");
    n.extraFeeMusd = extraFeeMusd;
    emit NodeExtraFeeSet(nodeId, extraFeeMusd);
  }

  /// Removes the node from the farm (its twin may register again); only while it carries no contract.
  function deleteNode(uint32 nodeId) external {
    Node storage n = _farmerNode(nodeId);
    (uint32 active, uint64 rent) = gridContracts.nodeLoad(nodeId);
    if (active != 0 || rent != 0) revert InvalidState("node", nodeId, "has active contracts; cannot delete");
    n.deleted = true;
    delete nodeIdByTwin[n.twinId];
    emit NodeDeleted(nodeId, n.farmId);
  }

  // ---- council ----

  function setNodeCertification(uint32 nodeId, NodeCertification certification) external onlyCouncil {
    _node(nodeId).certification = certification;
    emit NodeCertificationSet(nodeId, certification);
  }

  // ---- views ----

  function getNode(uint32 nodeId) external view returns (Node memory) {
    Node storage n = nodes[nodeId];
    if (n.id == 0) revert NotFound("node", nodeId);
    return n;
  }

  /// Nodes with ids from `firstId`, at most `count` (≤ 100); deleted nodes included (see `deleted`).
  function getNodes(uint32 firstId, uint32 count) external view returns (Node[] memory out) {
    if (count > MAX_PAGE) revert InvalidInput("count", "at most 100 per page");
    if (firstId == 0) firstId = 1;
    uint256 last = uint256(firstId) + count - 1;
    if (last > nodeCount) last = nodeCount;
    uint256 k = last >= firstId ? last - firstId + 1 : 0;
    out = new Node[](k);
    for (uint256 i = 0; i < k; i++) out[i] = nodes[uint32(firstId + i)];
  }

  /// Node ids of a farm (append-only index: check `farmId` and `deleted` on each node).
  function getFarmNodeIds(uint32 farmId, uint32 first, uint32 count) external view returns (uint32[] memory out) {
    if (count > MAX_PAGE) revert InvalidInput("count", "at most 100 per page");
    uint256 total = farmNodeCount[farmId];
    uint256 end = uint256(first) + count;
    if (end > total) end = total;
    uint256 k = end > first ? end - first : 0;
    out = new uint32[](k);
    for (uint256 i = 0; i < k; i++) out[i] = farmNodes[farmId][uint32(first + i)];
  }

  /// What contract creation and billing need in one call; reverts NotFound for unknown or deleted nodes.
  function nodeTerms(uint32 nodeId)
    external
    view
    returns (uint32 farmId, uint32 twinId, bool certified, bool down, Resources memory resources, uint64 extraFeeMusd)
  {
    Node storage n = _node(nodeId);
    return (n.farmId, n.twinId, n.certification == NodeCertification.Certified, n.powerState == Power.Down, n.resources, n.extraFeeMusd);
  }

  // ---- internals ----

  function _node(uint32 nodeId) private view returns (Node storage n) {
    n = nodes[nodeId];
    if (n.id == 0 || n.deleted) revert NotFound("node", nodeId);
  }

  function _myNode() private view returns (Node storage n) {
    uint32 twinId = twins.requireTwin(msg.sender);
    uint32 id = nodeIdByTwin[twinId];
    if (id == 0) revert Unauthorized("node");
    n = nodes[id];
  }

  function _farmerNode(uint32 nodeId) private view returns (Node storage n) {
    n = _node(nodeId);
    if (twins.twinIdOf(msg.sender) != farms.farmTwin(n.farmId)) revert NotOwner("farm of node", nodeId);
  }

  function _apply(Node storage n, NodeInput calldata input) private {
    n.farmId = input.farmId;
    n.resources = input.resources;
    n.location = input.location;
    n.serial = input.serial;
    n.secureBoot = input.secureBoot;
    n.virtualized = input.virtualized;
    n.updatedAt = uint64(block.timestamp);
  }

  function _checkInput(NodeInput calldata input) private pure {
    if (input.resources.cru == 0) revert InvalidInput("resources.cru", "must be at least 1 core");
    if (input.resources.mru == 0) revert InvalidInput("resources.mru", "must be more than 0 bytes");
    _checkText(input.location.country, 64, "location.country");
    _checkText(input.location.city, 64, "location.city");
    if (input.location.latitude < -90e6 || input.location.latitude > 90e6) revert InvalidInput("location.latitude", "outside -90..90 degrees");
    if (input.location.longitude < -180e6 || input.location.longitude > 180e6) revert InvalidInput("location.longitude", "outside -180..180 degrees");
    _checkField(input.serial, 64, "serial");
  }

  /// Printable ASCII without spaces, at most `max` bytes.
  function _checkField(string calldata s, uint256 max, string memory field) private pure {
    bytes memory b = bytes(s);
    if (b.length > max) revert InvalidInput(field, "too long");
    if (!Text.isPrintable(b)) revert InvalidInput(field, "must be printable ASCII without spaces");
  }

  /// At most `max` bytes, no control characters (spaces allowed: "New York").
  function _checkText(string calldata s, uint256 max, string memory field) private pure {
    bytes memory b = bytes(s);
    if (b.length > max) revert InvalidInput(field, "too long");
    for (uint256 i = 0; i < b.length; i++) if (uint8(b[i]) < 0x20 || uint8(b[i]) == 0x7f) revert InvalidInput(field, "contains control characters");
  }
}
