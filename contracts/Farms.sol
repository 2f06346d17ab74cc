// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";
import "./Interfaces.sol";

/// Farms: a name, the farmer's twin, a list of public IPv4 addresses (with gateways) that node contracts
/// reserve, a certification, a "dedicated" flag (nodes only rentable whole) and the pricing policy its nodes bill by.
contract Farms is Wired {
  uint256 public constant MAX_IPS = 256;
  uint256 public constant MAX_NAME = 40;

  struct Farm {
    uint32 id;
    string name;
    uint32 twinId;
    uint32 pricingPolicyId;
    FarmCertification certification;
    bool dedicated;
    uint16 ipCount;
    uint16 freeIps;
    uint64 createdAt;
  }

  /// One public IPv4: address and gateway as big-endian uint32, the prefix length, and the node contract
  /// holding it (0 = free).
  struct PublicIp {
    uint32 ip;
    uint8 prefix;
    uint32 gateway;
    uint64 contractId;
  }

  struct IpInput {
    uint32 ip;
    uint8 prefix;
    uint32 gateway;
  }

  ITwins public twins;
  IPricing public pricing;
  address public gridContracts;

  mapping(uint32 => Farm) private farms;
  mapping(uint32 => mapping(uint256 => PublicIp)) private ips; // farm => index < ipCount => ip
  mapping(uint32 => mapping(uint32 => bool)) private ipOnFarm; // farm => ip => present (O(1) uniqueness)
  mapping(bytes32 => uint32) public farmIdByNameKey;
  uint32 public farmCount;

  event FarmStored(uint32 indexed farmId, string name, uint32 indexed twinId, uint32 pricingPolicyId);
  event FarmUpdated(uint32 indexed farmId, string name);
  event FarmPublicIpAdded(uint32 indexed farmId, uint32 ip, uint8 prefix, uint32 gateway);
  event FarmPublicIpRemoved(uint32 indexed farmId, uint32 ip);
  event FarmCertificationSet(uint32 indexed farmId, FarmCertification certification);
  event FarmDedicatedSet(uint32 indexed farmId, bool dedicated);
  event FarmPricingPolicySet(uint32 indexed farmId, uint32 pricingPolicyId);
  event IpsReserved(uint32 indexed farmId, uint64 indexed contractId, uint32[] ips);
  event IpsFreed(uint32 indexed farmId, uint64 indexed contractId, uint32[] ips);

  function init(address council_, ITwins twins_, IPricing pricing_, address gridContracts_) external onlyDeployerOnce {
    council = council_;
    twins = twins_;
    pricing = pricing_;
    gridContracts = gridContracts_;
  }

  modifier onlyContracts() {
    if (msg.sender != gridContracts) revert Unauthorized("contracts");
    _;
  }

  // ---- farmer ----

  function createFarm(string calldata name, IpInput[] calldata publicIps) external returns (uint32 id) {
    uint32 twinId = twins.requireTwin(msg.sender);
    bytes32 key = _checkName(name);
    if (publicIps.length > MAX_IPS) revert InvalidInput("publicIps", "more than 256");
    id = ++farmCount;
    Farm storage f = farms[id];
    f.id = id;
    f.name = name;
    f.twinId = twinId;
    f.pricingPolicyId = 1;
    f.createdAt = uint64(block.timestamp);
    farmIdByNameKey[key] = id;
    emit FarmStored(id, name, twinId, 1);
    for (uint256 i = 0; i < publicIps.length; i++) _addIp(f, publicIps[i]);
  }

  function updateFarm(uint32 farmId, string calldata name) external {
    Farm storage f = _owned(farmId);
    bytes32 oldKey = Text.foldedKey(bytes(f.name));
    bytes32 key = Text.foldedKey(bytes(name));
    if (key != oldKey) {
      _checkName(name);
      delete farmIdByNameKey[oldKey];
      farmIdByNameKey[key] = farmId;
    }
    f.name = name;
    emit FarmUpdated(farmId, name);
  }

  function addFarmIp(uint32 farmId, IpInput calldata ip) external {
    Farm storage f = _owned(farmId);
    if (f.ipCount >= MAX_IPS) revert InvalidState("farm", farmId, "already 256 public IPs");
    _addIp(f, ip);
  }

  /// Removes a free public IP; an IP reserved by a contract cannot be removed.
  function removeFarmIp(uint32 farmId, uint32 ip) external {
    Farm storage f = _owned(farmId);
    uint256 n = f.ipCount;
    for (uint256 i = 0; i < n; i++) {
      if (ips[farmId][i].ip != ip) continue;
      if (ips[farmId][i].contractId != 0) revert InvalidState("public ip", ip, "reserved by a contract");
      ips[farmId][i] = ips[farmId][n - 1];
      delete ips[farmId][n - 1];
      delete ipOnFarm[farmId][ip];
      f.ipCount -= 1;
      f.freeIps -= 1;
      emit FarmPublicIpRemoved(farmId, ip);
      return;
    }
    revert NotFound("public ip", ip);
  }

  // ---- council ----

  function setFarmCertification(uint32 farmId, FarmCertification certification) external onlyCouncil {
    _farm(farmId).certification = certification;
    emit FarmCertificationSet(farmId, certification);
  }

  function setFarmDedicated(uint32 farmId, bool dedicated) external onlyCouncil {
    _farm(farmId).dedicated = dedicated;
    emit FarmDedicatedSet(farmId, dedicated);
  }

  function setFarmPricingPolicy(uint32 farmId, uint32 policyId) external onlyCouncil {
    if (!pricing.policyExists(policyId)) revert NotFound("pricing policy", policyId);
    _farm(farmId).pricingPolicyId = policyId;
    emit FarmPricingPolicySet(farmId, policyId);
  }

  // ---- contracts ----

  /// Reserves the first `count` free IPs of the farm for `contractId`.
  function reserveIps(uint32 farmId, uint64 contractId, uint32 count) external onlyContracts returns (uint32[] memory out) {
    Farm storage f = _farm(farmId);
    if (f.freeIps < count) revert NoIpsFree(farmId, count, f.freeIps);
    out = new uint32[](count);
    uint256 got = 0;
    uint256 n = f.ipCount;
    for (uint256 i = 0; i < n && got < count; i++) {
      PublicIp storage p = ips[farmId][i];
      if (p.contractId != 0) continue;
      p.contractId = contractId;
      out[got++] = p.ip;
    }
    f.freeIps -= uint16(count);
    emit IpsReserved(farmId, contractId, out);
  }

  /// Frees every IP of the farm held by `contractId`.
  function releaseIps(uint32 farmId, uint64 contractId) external onlyContracts returns (uint32 freed) {
    Farm storage f = _farm(farmId);
    uint256 n = f.ipCount;
    uint32[] memory tmp = new uint32[](n);
    for (uint256 i = 0; i < n; i++) {
      PublicIp storage p = ips[farmId][i];
      if (p.contractId != contractId) continue;
      p.contractId = 0;
      tmp[freed++] = p.ip;
    }
    if (freed == 0) return 0;
    f.freeIps += uint16(freed);
    uint32[] memory out = new uint32[](freed);
    for (uint256 i = 0; i < freed; i++) out[i] = tmp[i];
    emit IpsFreed(farmId, contractId, out);
  }

  // ---- views ----

  function getFarm(uint32 farmId) external view returns (Farm memory) {
    return _farm(farmId);
  }

  function getFarmIps(uint32 farmId) external view returns (PublicIp[] memory out) {
    Farm storage f = _farm(farmId);
    out = new PublicIp[](f.ipCount);
    for (uint256 i = 0; i < out.length; i++) out[i] = ips[farmId][i];
  }

  /// The IPs `contractId` holds on the farm.
  function ipsOfContract(uint32 farmId, uint64 contractId) external view returns (PublicIp[] memory out) {
    Farm storage f = _farm(farmId);
    uint256 n = f.ipCount;
    uint256 k = 0;
    for (uint256 i = 0; i < n; i++) if (ips[farmId][i].contractId == contractId) k++;
    out = new PublicIp[](k);
    k = 0;
    for (uint256 i = 0; i < n; i++) if (ips[farmId][i].contractId == contractId) out[k++] = ips[farmId][i];
  }

  function farmTwin(uint32 farmId) external view returns (uint32) {
    return _farm(farmId).twinId;
  }

  /// What billing and contract creation need in one call.
  function farmTerms(uint32 farmId) external view returns (uint32 twinId, uint32 pricingPolicyId, bool dedicated) {
    Farm storage f = _farm(farmId);
    return (f.twinId, f.pricingPolicyId, f.dedicated);
  }

  // ---- internals ----

  function _farm(uint32 farmId) private view returns (Farm storage f) {
    f = farms[farmId];
    if (f.id == 0) revert NotFound("farm", farmId);
  }

  function _owned(uint32 farmId) private view returns (Farm storage f) {
    f = _farm(farmId);
    if (twins.twinIdOf(msg.sender) != f.twinId) revert NotOwner("farm", farmId);
  }

  function _checkName(string calldata name) private view returns (bytes32 key) {
    bytes memory b = bytes(name);
    if (b.length < 3 || b.length > MAX_NAME || !Text.isSlug(b, true)) revert InvalidInput("name", "3..40 chars of [A-Za-z0-9_-]");
    key = Text.foldedKey(b);
    if (farmIdByNameKey[key] != 0) revert NameTaken(name);
  }

  function _addIp(Farm storage f, IpInput calldata p) private {
    _checkIp(p);
    uint32 farmId = f.id;
    if (ipOnFarm[farmId][p.ip]) revert AlreadyExists("public ip on this farm");
    ipOnFarm[farmId][p.ip] = true;
    ips[farmId][f.ipCount] = PublicIp(p.ip, p.prefix, p.gateway, 0);
    f.ipCount += 1;
    f.freeIps += 1;
    emit FarmPublicIpAdded(farmId, p.ip, p.prefix, p.gateway);
  }

  /// A usable unicast host address inside its subnet, with the gateway in the same subnet.
  function _checkIp(IpInput calldata p) private pure {
    if (p.prefix < 8 || p.prefix > 30) revert InvalidInput("ip", "prefix length must be 8..30");
    uint8 first = uint8(p.ip >> 24);
    if (first == 0 || first == 127 || first >= 224) revert InvalidInput("ip", "not a unicast address");
    if ((p.ip >> 16) == 0xa9fe) revert InvalidInput("ip", "link-local address");
    uint32 hostMask = uint32((uint256(1) << (32 - p.prefix)) - 1);
    uint32 host = p.ip & hostMask;
    if (host == 0 || host == hostMask) revert InvalidInput("ip", "network or broadcast address of its subnet");
    if ((p.ip & ~hostMask) != (p.gateway & ~hostMask)) revert InvalidInput("gateway", "not inside the IP's subnet");
    uint32 gwHost = p.gateway & hostMask;
    if (gwHost == 0 || gwHost == hostMask || p.gateway == p.ip) revert InvalidInput("gateway", "must be another host of the subnet");
  }
}
