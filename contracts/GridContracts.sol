// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";
import "./Interfaces.sol";

/// IT contracts:
///  - node contract: one deployment on one node (its hash, optional data, public IPs reserved from the farm);
///  - name contract: a unique gateway name;
///  - rent contract: a whole node, for one twin (node contracts on it are then only billed for IPs and NU).
/// States: Created -> GracePeriod (unpaid; back to Created when paid) -> Deleted(cause). Billing lives in
/// Billing.sol, which moves contracts between these states through `setGrace` and `deleteByBilling`.
contract GridContracts is Wired {
  uint256 public constant MAX_DEPLOYMENT_DATA = 512;
  uint32 public constant MAX_CONTRACT_IPS = 32;
  uint256 public constant MAX_PAGE = 100;

  struct Contract {
    uint64 id;
    uint32 twinId;
    ContractKind kind;
    ContractState state;
    DeleteCause cause;
    uint32 nodeId; // node and rent contracts
    uint32 farmId; // node and rent contracts: the node's farm at creation (its IPs, its pricing policy)
    bytes32 deploymentHash; // node contracts
    bytes deploymentData; // node contracts, <= 512 bytes
    uint32 publicIps; // node contracts
    string name; // name contracts
    uint64 solutionProviderId;
    uint64 rentContractId; // node contracts created on a rented node
    uint64 createdAt;
    uint64 updatedAt;
    uint64 graceStartedAt;
    uint64 deletedAt;
  }

  ITwins public twins;
  IFarms public farms;
  INodes public nodes;
  IPricing public pricing;
  IBilling public billing;

  mapping(uint64 => Contract) private contracts;
  uint64 public contractCount;

  mapping(uint32 => mapping(bytes32 => uint64)) public contractIdByNodeHash;
  mapping(bytes32 => uint64) private contractIdByNameKey;
  mapping(uint32 => uint64) public rentContractOf;
  mapping(uint32 => uint32) public activeNodeContracts;
  // append-only indices (deleted contracts included): twin => i => id, node => i => id
  mapping(uint32 => mapping(uint32 => uint64)) private twinContracts;
  mapping(uint32 => uint32) public twinContractCount;
  mapping(uint32 => mapping(uint32 => uint64)) private nodeContracts;
  mapping(uint32 => uint32) public nodeContractCount;

  event ContractCreated(
    uint64 indexed contractId,
    uint32 indexed twinId,
    uint32 indexed nodeId,
    ContractKind kind,
    bytes32 deploymentHash,
    uint32 publicIps,
    string name
  );
  event ContractUpdated(uint64 indexed contractId, uint32 indexed twinId, uint32 indexed nodeId, bytes32 deploymentHash);
  event ContractCanceled(uint64 indexed contractId, uint32 indexed twinId, uint32 indexed nodeId, ContractKind kind, DeleteCause cause);
  event ContractGracePeriodStarted(uint64 indexed contractId, uint32 indexed twinId, uint32 indexed nodeId, ContractKind kind, uint64 startedAt);
  event ContractGracePeriodEnded(uint64 indexed contractId, uint32 indexed twinId, uint32 indexed nodeId, ContractKind kind);

  function init(address council_, ITwins twins_, IFarms farms_, INodes nodes_, IPricing pricing_, IBilling billing_)
    external
    onlyDeployerOnce
  {
    council = council_;
    twins = twins_;
    farms = farms_;
    nodes = nodes_;
    pricing = pricing_;
    billing = billing_;
  }

  modifier onlyBilling() {
    if (msg.sender != address(billing)) revert Unauthorized("billing");
    _;
  }

  // ---- create / update / cancel (owner twin) ----

  /// Creates a node contract carrying `deploymentHash` (unique per node among live contracts) and reserves
  /// `publicIps` IPs from the node's farm. On a rented node only the renter may deploy; a dedicated node
  /// must be rented first.
  function createNodeContract(uint32 nodeId, bytes32 deploymentHash, bytes calldata deploymentData, uint32 publicIps, uint64 solutionProviderId)
    external
    returns (uint64 id)
  {
    uint32 twinId = twins.requireTwin(msg.sender);
    if (deploymentHash == bytes32(0)) revert InvalidInput("deploymentHash", "zero");
    if (deploymentData.length > MAX_DEPLOYMENT_DATA) revert InvalidInput("deploymentData", "longer than 512 bytes");
    if (publicIps > MAX_CONTRACT_IPS) revert InvalidInput("publicIps", "more than 32");
    if (contractIdByNodeHash[nodeId][deploymentHash] != 0) revert AlreadyExists("contract with this deployment hash on the node");
    (uint32 farmId, uint64 rentId) = _admitNodeContract(nodeId, twinId, publicIps);
    _checkProvider(solutionProviderId);
    id = _new(twinId, ContractKind.Node, nodeId, farmId, solutionProviderId);
    Contract storage c = contracts[id];
    c.deploymentHash = deploymentHash;
    c.deploymentData = deploymentData;
    c.publicIps = publicIps;
    c.rentContractId = rentId;
    contractIdByNodeHash[nodeId][deploymentHash] = id;
    activeNodeContracts[nodeId] += 1;
    emit ContractCreated(id, twinId, nodeId, ContractKind.Node, deploymentHash, publicIps, "");
    if (publicIps > 0) farms.reserveIps(farmId, id, publicIps);
  }

  /// Reserves a gateway name (3..64 chars of [a-z0-9_-]), unique among live name contracts.
  function createNameContract(string calldata name) external returns (uint64 id) {
    uint32 twinId = twins.requireTwin(msg.sender);
    bytes memory b = bytes(name);
    if (b.length < 3 || b.length > 64 || !Text.isSlug(b, false)) revert InvalidInput("name", "3..64 chars of [a-z0-9_-]");
    bytes32 key = keccak256(b);
    if (contractIdByNameKey[key] != 0) revert NameTaken(name);
    billing.requireHourOf(msg.sender, pricing.nameRate());
    id = _new(twinId, ContractKind.Name, 0, 0, 0);
    contracts[id].name = name;
    contractIdByNameKey[key] = id;
    emit ContractCreated(id, twinId, 0, ContractKind.Name, bytes32(0), 0, name);
  }

  /// Rents a whole node: the node must be neither rented nor carrying node contracts.
  function createRentContract(uint32 nodeId, uint64 solutionProviderId) external returns (uint64 id) {
    uint32 twinId = twins.requireTwin(msg.sender);
    (uint32 farmId, , bool certified, , Resources memory r, uint64 extraFee) = nodes.nodeTerms(nodeId);
    if (rentContractOf[nodeId] != 0) revert InvalidState("node", nodeId, "is already rented");
    if (activeNodeContracts[nodeId] != 0) revert InvalidState("node", nodeId, "has active node contracts");
    _checkProvider(solutionProviderId);
    (, uint32 policyId, ) = farms.farmTerms(farmId);
    billing.requireHourOf(msg.sender, pricing.rentRate(policyId, r, certified) + pricing.extraFeeRate(extraFee));
    id = _new(twinId, ContractKind.Rent, nodeId, farmId, solutionProviderId);
    rentContractOf[nodeId] = id;
    emit ContractCreated(id, twinId, nodeId, ContractKind.Rent, bytes32(0), 0, "");
  }

  /// Changes the deployment a node contract carries; not while in grace period.
  function updateNodeContract(uint64 id, bytes32 deploymentHash, bytes calldata deploymentData) external {
    Contract storage c = _owned(id);
    if (c.kind != ContractKind.Node) revert InvalidState("contract", id, "is not a node contract");
    if (c.state != ContractState.Created) revert InvalidState("contract", id, "is not in state Created");
    if (deploymentHash == bytes32(0)) revert InvalidInput("deploymentHash", "zero");
    if (deploymentData.length > MAX_DEPLOYMENT_DATA) revert InvalidInput("deploymentData", "longer than 512 bytes");
    if (deploymentHash != c.deploymentHash) {
      if (contractIdByNodeHash[c.nodeId][deploymentHash] != 0) revert AlreadyExists("contract with this deployment hash on the node");
      delete contractIdByNodeHash[c.nodeId][c.deploymentHash];
      contractIdByNodeHash[c.nodeId][deploymentHash] = id;
    }
    c.deploymentHash = deploymentHash;
    c.deploymentData = deploymentData;
    c.updatedAt = uint64(block.timestamp);
    emit ContractUpdated(id, c.twinId, c.nodeId, deploymentHash);
  }

  /// Bills the contract a last time and deletes it. A rent contract can only be cancelled once the node
  /// carries no node contracts.
  function cancelContract(uint64 id) external {
    Contract storage c = _owned(id);
    _cancel(c, DeleteCause.CanceledByUser);
  }

  function cancelContractByCouncil(uint64 id) external onlyCouncil {
    _cancel(_contract(id), DeleteCause.CanceledByCouncil);
  }

  // ---- billing callbacks ----

  function setGrace(uint64 id, bool inGrace) external onlyBilling {
    Contract storage c = _contract(id);
    if (inGrace && c.state == ContractState.Created) {
      c.state = ContractState.GracePeriod;
      c.graceStartedAt = uint64(block.timestamp);
      emit ContractGracePeriodStarted(id, c.twinId, c.nodeId, c.kind, uint64(block.timestamp));
    } else if (!inGrace && c.state == ContractState.GracePeriod) {
      c.state = ContractState.Created;
      c.graceStartedAt = 0;
      emit ContractGracePeriodEnded(id, c.twinId, c.nodeId, c.kind);
    }
  }

  function deleteByBilling(uint64 id, DeleteCause cause) external onlyBilling {
    Contract storage c = _contract(id);
    if (c.state != ContractState.Deleted) _delete(c, cause);
  }

  // ---- views ----

  function getContract(uint64 id) external view returns (Contract memory) {
    return _contract(id);
  }

  function billingTerms(uint64 id) external view returns (ContractTerms memory t) {
    Contract storage c = _contract(id);
    t.id = id;
    t.twinId = c.twinId;
    t.kind = c.kind;
    t.state = c.state;
    t.nodeId = c.nodeId;
    t.farmId = c.farmId;
    t.publicIps = c.publicIps;
    t.rentContractId = c.rentContractId;
    t.solutionProviderId = c.solutionProviderId;
    t.graceStartedAt = c.graceStartedAt;
    if (c.rentContractId != 0) {
      t.rentState = contracts[c.rentContractId].state;
      t.rentCause = contracts[c.rentContractId].cause;
    }
  }

  /// The state that matters to the node: a node contract on a rent in grace is in grace too, and on a
  /// deleted rent it is deleted (billing records that at its next bill).
  function effectiveState(uint64 id) external view returns (ContractState) {
    Contract storage c = _contract(id);
    if (c.state != ContractState.Deleted && c.rentContractId != 0) {
      ContractState rs = contracts[c.rentContractId].state;
      if (uint8(rs) > uint8(c.state)) return rs;
    }
    return c.state;
  }

  function contractIdByName(string calldata name) external view returns (uint64) {
    return contractIdByNameKey[keccak256(bytes(name))];
  }

  function nodeLoad(uint32 nodeId) external view returns (uint32, uint64) {
    return (activeNodeContracts[nodeId], rentContractOf[nodeId]);
  }

  /// Contract ids of a twin, from index `first`, at most `count` (<= 100), deleted ones included.
  function getTwinContractIds(uint32 twinId, uint32 first, uint32 count) external view returns (uint64[] memory) {
    return _page(twinContracts[twinId], twinContractCount[twinId], first, count);
  }

  /// Contract ids hosted on a node (node and rent contracts), from index `first`, at most `count` (<= 100).
  function getNodeContractIds(uint32 nodeId, uint32 first, uint32 count) external view returns (uint64[] memory) {
    return _page(nodeContracts[nodeId], nodeContractCount[nodeId], first, count);
  }

  // ---- internals ----

  function _new(uint32 twinId, ContractKind kind, uint32 nodeId, uint32 farmId, uint64 sp) private returns (uint64 id) {
    id = ++contractCount;
    Contract storage c = contracts[id];
    c.id = id;
    c.twinId = twinId;
    c.kind = kind;
    c.nodeId = nodeId;
    c.farmId = farmId;
    c.solutionProviderId = sp;
    c.createdAt = uint64(block.timestamp);
    c.updatedAt = uint64(block.timestamp);
    twinContracts[twinId][twinContractCount[twinId]++] = id;
    if (kind != ContractKind.Name) nodeContracts[nodeId][nodeContractCount[nodeId]++] = id;
    billing.open(id);
  }

  function _cancel(Contract storage c, DeleteCause cause) private {
    if (c.state == ContractState.Deleted) revert InvalidState("contract", c.id, "is already deleted");
    if (c.kind == ContractKind.Rent && activeNodeContracts[c.nodeId] != 0 && cause == DeleteCause.CanceledByUser) {
      revert InvalidState("contract", c.id, "the rented node still has node contracts; cancel them first");
    }
    billing.settle(c.id);
    _delete(c, cause);
  }

  function _delete(Contract storage c, DeleteCause cause) private {
    c.state = ContractState.Deleted;
    c.cause = cause;
    c.deletedAt = uint64(block.timestamp);
    c.updatedAt = uint64(block.timestamp);
    if (c.kind == ContractKind.Node) {
      delete contractIdByNodeHash[c.nodeId][c.deploymentHash];
      activeNodeContracts[c.nodeId] -= 1;
      if (c.publicIps > 0) farms.releaseIps(c.farmId, c.id);
    } else if (c.kind == ContractKind.Name) {
      delete contractIdByNameKey[keccak256(bytes(c.name))];
    } else {
      delete rentContractOf[c.nodeId];
    }
    emit ContractCanceled(c.id, c.twinId, c.nodeId, c.kind, cause);
  }

  function _contract(uint64 id) private view returns (Contract storage c) {
    c = contracts[id];
    if (c.id == 0) revert NotFound("contract", id);
  }

  function _owned(uint64 id) private view returns (Contract storage c) {
    c = _contract(id);
    if (twins.twinIdOf(msg.sender) != c.twinId) revert NotOwner("contract", id);
  }

  /// Checks that `twinId` may deploy on the node and can pay for the IPs; returns the farm and the rent (0 = none).
  function _admitNodeContract(uint32 nodeId, uint32 twinId, uint32 publicIps) private view returns (uint32 farmId, uint64 rentId) {
    bool certified;
    bool down;
    uint64 extraFee;
    (farmId, , certified, down, , extraFee) = nodes.nodeTerms(nodeId);
    if (down) revert InvalidState("node", nodeId, "is powered down (standby)");
    (, uint32 policyId, bool dedicated) = farms.farmTerms(farmId);
    rentId = rentContractOf[nodeId];
    if (rentId != 0) {
      if (contracts[rentId].twinId != twinId) revert InvalidState("node", nodeId, "is rented by another twin");
    } else if (dedicated || extraFee > 0) {
      revert InvalidState("node", nodeId, "is dedicated: rent it first (createRentContract)");
    }
    if (publicIps > 0) {
      Resources memory none;
      billing.requireHourOf(msg.sender, pricing.nodeContractRate(policyId, none, publicIps, rentId != 0, certified));
    }
  }

  function _checkProvider(uint64 sp) private view {
    if (sp == 0) return;
    (bool approved, , ) = pricing.solutionProviderTakes(sp);
    if (!approved) revert InvalidState("solution provider", sp, "is not approved by the council");
  }

  function _page(mapping(uint32 => uint64) storage index, uint32 total, uint32 first, uint32 count)
    private
    view
    returns (uint64[] memory out)
  {
    if (count > MAX_PAGE) revert InvalidInput("count", "at most 100 per page");
    uint256 end = uint256(first) + count;
    if (end > total) end = total;
    uint256 k = end > first ? end - first : 0;
    out = new uint64[](k);
    for (uint256 i = 0; i < k; i++) out[i] = index[uint32(first + i)];
  }
}
