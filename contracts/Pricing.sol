// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";

/// Pricing policies, the token price (a council-set oracle with min/max clamp), the payout split, the grace
/// period, and solution providers. Amounts are in "units USD" as on TFChain: 1 mUSD = 10 000 units; unit
/// prices are per unit (CU, SU, IP; NU per GB transferred) per hour.
contract Pricing is Wired {
  uint256 public constant MAX_PROVIDERS = 5;
  uint256 private constant GIB = 1 << 30;
  uint256 private constant NANO = 1e9;
  uint256 private constant HOUR = 3600;

  struct PolicyInput {
    string name;
    uint64 su;
    uint64 cu;
    uint64 nu;
    uint64 ipu;
    uint64 uniqueName;
    uint64 domainName;
    address foundationAccount;
    address certifiedSalesAccount;
    /// Rent contracts pay (100 - this) % of the whole node's CU/SU price.
    uint8 dedicatedDiscountPct;
  }

  struct Policy {
    uint32 id;
    string name;
    uint64 su;
    uint64 cu;
    uint64 nu;
    uint64 ipu;
    uint64 uniqueName;
    uint64 domainName;
    address foundationAccount;
    address certifiedSalesAccount;
    uint8 dedicatedDiscountPct;
  }

  /// Percentages of every payment (after the farmer's extra fee); what remains is burned.
  struct Split {
    uint8 foundationPct;
    uint8 stakingPct;
    uint8 salesPct;
  }

  struct Provider {
    address who;
    /// Percent of each payment, carved out of the sales share.
    uint8 take;
  }

  struct SolutionProvider {
    uint64 id;
    string description;
    string link;
    Provider[] providers;
    bool approved;
  }

  mapping(uint32 => Policy) private policies;
  uint32 public policyCount;
  uint64 public tokenPriceMusd;
  uint64 public minPriceMusd;
  uint64 public maxPriceMusd;
  address public stakingPoolAccount;
  uint64 public gracePeriod;
  Split public split;
  mapping(uint64 => SolutionProvider) private providers;
  uint64 public solutionProviderCount;

  event PricingPolicyStored(uint32 indexed policyId, Policy policy);
  event TokenPriceSet(uint64 priceMusd, uint64 minPriceMusd, uint64 maxPriceMusd);
  event GracePeriodSet(uint64 seconds_);
  event SplitSet(Split split, address stakingPoolAccount);
  event SolutionProviderCreated(uint64 indexed id, string description, string link, Provider[] providers);
  event SolutionProviderApproved(uint64 indexed id, bool approved);

  /// Wires the council and stores the first policy (id 1, the default of new farms) and the economics.
  function init(
    address council_,
    PolicyInput calldata policy1,
    uint64 priceMusd,
    uint64 minMusd,
    uint64 maxMusd,
    address stakingPool,
    uint64 gracePeriodSeconds
  ) external onlyDeployerOnce {
    council = council_;
    _store(++policyCount, policy1);
    _setPrice(priceMusd, minMusd, maxMusd);
    _setSplit(Split(10, 5, 50), stakingPool);
    _setGrace(gracePeriodSeconds);
  }

  // ---- council ----

  function createPricingPolicy(PolicyInput calldata input) external onlyCouncil returns (uint32 id) {
    id = ++policyCount;
    _store(id, input);
  }

  function updatePricingPolicy(uint32 policyId, PolicyInput calldata input) external onlyCouncil {
    if (policies[policyId].id == 0) revert NotFound("pricing policy", policyId);
    _store(policyId, input);
  }

  function setTokenPrice(uint64 priceMusd, uint64 minMusd, uint64 maxMusd) external onlyCouncil {
    _setPrice(priceMusd, minMusd, maxMusd);
  }

  function setGracePeriod(uint64 seconds_) external onlyCouncil {
    _setGrace(seconds_);
  }

  function setSplit(Split calldata s, address stakingPool) external onlyCouncil {
    _setSplit(s, stakingPool);
  }

  function approveSolutionProvider(uint64 id, bool approved) external onlyCouncil {
    SolutionProvider storage sp = providers[id];
    if (sp.id == 0) revert NotFound("solution provider", id);
    sp.approved = approved;
    emit SolutionProviderApproved(id, approved);
  }

  // ---- anyone ----

  /// Registers a solution provider; it takes its cut only once the council approves it.
  function createSolutionProvider(string calldata description, string calldata link, Provider[] calldata list)
    external
    returns (uint64 id)
  {
    if (bytes(description).length == 0 || bytes(description).length > 256) revert InvalidInput("description", "1..256 bytes");
    if (bytes(link).length > 256) revert InvalidInput("link", "longer than 256 bytes");
    if (list.length == 0 || list.length > MAX_PROVIDERS) revert InvalidInput("providers", "need 1..5 providers");
    uint256 total = 0;
    for (uint256 i = 0; i < list.length; i++) {
      if (list[i].who == address(0)) revert InvalidInput("providers", "zero address");
      total += list[i].take;
    }
    if (total > split.salesPct) revert InvalidInput("providers", "takes add up to more than the sales share");
    id = ++solutionProviderCount;
    SolutionProvider storage sp = providers[id];
    sp.id = id;
    sp.description = description;
    sp.link = link;
    for (uint256 i = 0; i < list.length; i++) sp.providers.push(list[i]);
    emit SolutionProviderCreated(id, description, link, list);
  }

  // ---- views ----

  function getPolicy(uint32 policyId) external view returns (Policy memory) {
    return _policy(policyId);
  }

  function policyExists(uint32 policyId) external view returns (bool) {
    return policies[policyId].id != 0;
  }

  function rates(uint32 policyId)
    external
    view
    returns (uint64 su, uint64 cu, uint64 nu, uint64 ipu, uint64 uniqueName, uint8 dedicatedDiscountPct)
  {
    Policy storage p = _policy(policyId);
    return (p.su, p.cu, p.nu, p.ipu, p.uniqueName, p.dedicatedDiscountPct);
  }

  function payees(uint32 policyId)
    external
    view
    returns (address foundation, address sales, address stakingPool, uint8 foundationPct, uint8 stakingPct, uint8 salesPct)
  {
    Policy storage p = _policy(policyId);
    return (p.foundationAccount, p.certifiedSalesAccount, stakingPoolAccount, split.foundationPct, split.stakingPct, split.salesPct);
  }

  /// The token price billing uses: the set price clamped to [min, max].
  function effectivePriceMusd() external view returns (uint64) {
    uint64 p = tokenPriceMusd;
    if (p < minPriceMusd) p = minPriceMusd;
    if (p > maxPriceMusd) p = maxPriceMusd;
    return p;
  }

  function getSolutionProvider(uint64 id) external view returns (SolutionProvider memory) {
    SolutionProvider storage sp = providers[id];
    if (sp.id == 0) revert NotFound("solution provider", id);
    return sp;
  }

  function solutionProviderTakes(uint64 id) external view returns (bool approved, address[] memory who, uint8[] memory takes) {
    SolutionProvider storage sp = providers[id];
    if (sp.id == 0) revert NotFound("solution provider", id);
    uint256 n = sp.providers.length;
    who = new address[](n);
    takes = new uint8[](n);
    for (uint256 i = 0; i < n; i++) {
      who[i] = sp.providers[i].who;
      takes[i] = sp.providers[i].take;
    }
    return (sp.approved, who, takes);
  }

  // ---- cost formulas (rates are in units USD × 1e9 per hour) ----

  /// Compute units × 1e9: min(max(mru/4, cru/2), max(mru/8, cru), max(mru/2, cru/4)), mru in GiB.
  function cuOf(Resources memory r) public pure returns (uint256) {
    uint256 m = (uint256(r.mru) * NANO) / GIB;
    uint256 c = uint256(r.cru) * NANO;
    uint256 a = _max(m / 4, c / 2);
    uint256 b = _max(m / 8, c);
    uint256 d = _max(m / 2, c / 4);
    return _min(a, _min(b, d));
  }

  /// Storage units × 1e9: hru/1200 + sru/200 in GiB, i.e. (hru + 6 sru) / 1200 GiB.
  function suOf(Resources memory r) public pure returns (uint256) {
    return ((uint256(r.hru) + 6 * uint256(r.sru)) * NANO) / (1200 * GIB);
  }

  /// Hourly rate of a node contract: IPs, plus CU and SU of the used resources unless the node is rented;
  /// +25 % on a certified node.
  function nodeContractRate(uint32 policyId, Resources memory used, uint32 publicIps, bool rented, bool certified)
    external
    view
    returns (uint256 rate)
  {
    Policy storage p = _policy(policyId);
    rate = uint256(publicIps) * NANO * p.ipu;
    if (!rented) rate += cuOf(used) * p.cu + suOf(used) * p.su;
    if (certified) rate = (rate * 5) / 4;
  }

  /// Hourly rate of renting a whole node: (100 - dedicatedDiscountPct) % of its CU and SU; +25 % if certified.
  function rentRate(uint32 policyId, Resources memory r, bool certified) external view returns (uint256 rate) {
    Policy storage p = _policy(policyId);
    rate = ((cuOf(r) * p.cu + suOf(r) * p.su) * (100 - p.dedicatedDiscountPct)) / 100;
    if (certified) rate = (rate * 5) / 4;
  }

  /// Hourly rate of a name contract (the unique name price of policy 1).
  function nameRate() external view returns (uint256) {
    return NANO * _policy(1).uniqueName;
  }

  /// Hourly rate of a farmer's extra fee given in mUSD per 30-day month.
  function extraFeeRate(uint64 extraFeeMusd) external pure returns (uint256) {
    return (uint256(extraFeeMusd) * 10_000 * NANO) / 720;
  }

  /// Accrued cost (units USD × 1e9 × 3600) of `nru` bytes of public traffic: nru / 1e9 GB × nu.
  function nuCost(uint32 policyId, uint64 nru) external view returns (uint256) {
    return uint256(nru) * _policy(policyId).nu * HOUR;
  }

  // ---- internals ----

  function _policy(uint32 policyId) private view returns (Policy storage p) {
    p = policies[policyId];
    if (p.id == 0) revert NotFound("pricing policy", policyId);
  }

  function _store(uint32 id, PolicyInput calldata input) private {
    bytes memory name = bytes(input.name);
    if (name.length == 0 || name.length > 64) revert InvalidInput("name", "1..64 bytes");
    if (input.foundationAccount == address(0)) revert InvalidInput("foundationAccount", "zero address");
    if (input.certifiedSalesAccount == address(0)) revert InvalidInput("certifiedSalesAccount", "zero address");
    if (input.dedicatedDiscountPct > 100) revert InvalidInput("dedicatedDiscountPct", "more than 100");
    policies[id] = Policy(
      id,
      input.name,
      input.su,
      input.cu,
      input.nu,
      input.ipu,
      input.uniqueName,
      input.domainName,
      input.foundationAccount,
      input.certifiedSalesAccount,
      input.dedicatedDiscountPct
    );
    emit PricingPolicyStored(id, policies[id]);
  }

  function _setPrice(uint64 priceMusd, uint64 minMusd, uint64 maxMusd) private {
    if (minMusd == 0 || minMusd > maxMusd) revert InvalidInput("price bounds", "need 0 < min <= max");
    if (priceMusd == 0) revert InvalidInput("price", "zero");
    tokenPriceMusd = priceMusd;
    minPriceMusd = minMusd;
    maxPriceMusd = maxMusd;
    emit TokenPriceSet(priceMusd, minMusd, maxMusd);
  }

  function _setGrace(uint64 seconds_) private {
    if (seconds_ == 0 || seconds_ > 365 days) revert InvalidInput("gracePeriod", "1 s .. 365 days");
    gracePeriod = seconds_;
    emit GracePeriodSet(seconds_);
  }

  function _setSplit(Split memory s, address stakingPool) private {
    if (uint256(s.foundationPct) + s.stakingPct + s.salesPct > 100) revert InvalidInput("split", "adds up to more than 100%");
    if (stakingPool == address(0)) revert InvalidInput("stakingPool", "zero address");
    split = s;
    stakingPoolAccount = stakingPool;
    emit SplitSet(s, stakingPool);
  }

  function _min(uint256 a, uint256 b) private pure returns (uint256) {
    return a < b ? a : b;
  }

  function _max(uint256 a, uint256 b) private pure returns (uint256) {
    return a > b ? a : b;
  }
}
