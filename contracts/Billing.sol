// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";
import "./Interfaces.sol";

/// Billing of IT contracts. Cost accrues per second from the pricing policy of the node's farm and the
/// resources the hosting node reports (node contracts), the whole node (rent) or the name price (name).
/// Anyone may call `bill`: it converts the accrued cost into tokens at the council-set price, applies the
/// balance-based discount, collects from the owner's balance and splits the payment (farmer's extra fee,
/// foundation, staking pool, sales minus solution-provider takes, burn). An unpaid bill puts the contract
/// in grace period (the rest is owed); a later bill that covers what is owed ends it; a bill after the
/// grace period deletes the contract (OutOfFunds).
contract Billing is Wired {
  uint256 public constant MAX_BATCH = 64;
  uint256 private constant HOUR = 3600;
  uint256 private constant MONTH = 30 days;
  /// accrued (units USD × 1e9 × 3600) → token base units (7 decimals) at price p mUSD: accrued / (TO_TOKENS × p).
  uint256 public constant TO_TOKENS = 3_600_000_000;

  struct Record {
    /// Resources in use, as last reported by the node (node contracts).
    Resources used;
    /// Cost is accrued up to this time.
    uint64 lastAccrual;
    uint64 lastBilled;
    /// Accrued, not yet billed cost, in units USD × 1e9 × 3600.
    uint256 accrued;
    /// Same, for the farmer's extra fee (rent contracts).
    uint256 accruedExtra;
    /// Billed but unpaid tokens (base units), and the part of it owed to the farmer.
    uint256 owed;
    uint256 owedExtra;
    uint256 totalPaid;
  }

  struct ResourceReport {
    uint64 contractId;
    Resources used;
  }

  struct NruReport {
    uint64 contractId;
    uint64 timestamp;
    uint64 window;
    uint64 nru; // bytes sent to the public network in the window
  }

  /// What a bill now would compute.
  struct Quote {
    /// Undiscounted amount of the accrued cost (token base units).
    uint256 due;
    /// 0 none, 1 default (-20 %), 2 bronze (-30 %), 3 silver (-40 %), 4 gold (-60 %).
    uint8 discountLevel;
    /// Discounted amount of the accrued cost.
    uint256 amount;
    /// Farmer's extra fee (never discounted).
    uint256 extra;
    /// Owed from earlier bills.
    uint256 owed;
  }

  ITwins public twins;
  IFarms public farms;
  INodes public nodes;
  IPricing public pricing;
  IZosToken public token;
  IGridContracts public gridContracts;

  mapping(uint64 => Record) private records;

  event ContractBilled(uint64 indexed contractId, uint64 timestamp, uint8 discountLevel, uint256 amountBilled, uint256 amountPaid, uint256 owed);
  event PayoutDistributed(
    uint64 indexed contractId,
    uint256 farmer,
    uint256 foundation,
    uint256 staking,
    uint256 sales,
    uint256 providers,
    uint256 burned
  );
  event UsedResourcesUpdated(uint64 indexed contractId, uint32 indexed nodeId, Resources used);
  event NruReportReceived(uint64 indexed contractId, uint32 indexed nodeId, uint64 timestamp, uint64 window, uint64 nru);

  function init(
    address council_,
    ITwins twins_,
    IFarms farms_,
    INodes nodes_,
    IPricing pricing_,
    IZosToken token_,
    IGridContracts gridContracts_
  ) external onlyDeployerOnce {
    council = council_;
    twins = twins_;
    farms = farms_;
    nodes = nodes_;
    pricing = pricing_;
    token = token_;
    gridContracts = gridContracts_;
  }

  modifier onlyContracts() {
    if (msg.sender != address(gridContracts)) revert Unauthorized("contracts");
    _;
  }

  // ---- node reports ----

  /// Resources used per contract, reported by the node hosting them; cost so far accrues at the old figures.
  function reportContractResources(ResourceReport[] calldata reports) external {
    if (reports.length > MAX_BATCH) revert InvalidInput("reports", "more than 64");
    uint32 nodeId = _callerNode();
    for (uint256 i = 0; i < reports.length; i++) {
      ContractTerms memory t = _hosted(reports[i].contractId, nodeId);
      if (t.state == ContractState.Deleted) continue;
      Record storage r = records[t.id];
      _accrue(t, r);
      r.used = reports[i].used;
      emit UsedResourcesUpdated(t.id, nodeId, reports[i].used);
    }
  }

  /// Network units (bytes to the public network) per contract, reported by the node hosting them.
  function addNruReports(NruReport[] calldata reports) external {
    if (reports.length > MAX_BATCH) revert InvalidInput("reports", "more than 64");
    uint32 nodeId = _callerNode();
    for (uint256 i = 0; i < reports.length; i++) {
      ContractTerms memory t = _hosted(reports[i].contractId, nodeId);
      if (t.state == ContractState.Deleted) continue;
      (, uint32 policyId, ) = farms.farmTerms(t.farmId);
      records[t.id].accrued += pricing.nuCost(policyId, reports[i].nru);
      emit NruReportReceived(t.id, nodeId, reports[i].timestamp, reports[i].window, reports[i].nru);
    }
  }

  // ---- billing (anyone) ----

  /// Bills the contract up to now. Node contracts on a rent that was deleted are billed a last time and
  /// deleted with the rent's cause.
  function bill(uint64 id) public {
    ContractTerms memory t = gridContracts.billingTerms(id);
    if (t.state == ContractState.Deleted) revert InvalidState("contract", id, "is deleted");
    if (t.rentContractId != 0 && t.rentState == ContractState.Deleted) {
      _bill(t, true);
      gridContracts.deleteByBilling(id, t.rentCause);
      return;
    }
    _bill(t, false);
  }

  /// Bills several contracts (at most 64); unknown and deleted ones are skipped.
  function billMany(uint64[] calldata ids) external {
    if (ids.length > MAX_BATCH) revert InvalidInput("ids", "more than 64");
    for (uint256 i = 0; i < ids.length; i++) {
      if (ids[i] == 0 || ids[i] > gridContracts.contractCount()) continue;
      if (gridContracts.billingTerms(ids[i]).state != ContractState.Deleted) bill(ids[i]);
    }
  }

  // ---- GridContracts hooks ----

  function open(uint64 id) external onlyContracts {
    Record storage r = records[id];
    r.lastAccrual = uint64(block.timestamp);
    r.lastBilled = uint64(block.timestamp);
  }

  /// The last bill of a contract being cancelled (what cannot be paid stays recorded as owed).
  function settle(uint64 id) external onlyContracts {
    _bill(gridContracts.billingTerms(id), true);
  }

  // ---- views ----

  function getRecord(uint64 id) external view returns (Record memory) {
    return records[id];
  }

  /// What `bill(id)` would compute now, without changing anything.
  function quote(uint64 id) external view returns (Quote memory q) {
    ContractTerms memory t = gridContracts.billingTerms(id);
    Record memory r = records[id];
    q.owed = r.owed;
    if (t.state == ContractState.Deleted) return q;
    (uint256 a, uint256 e) = _accrual(t, r.used, block.timestamp - r.lastAccrual);
    r.accrued += a;
    r.accruedExtra += e;
    q = _quote(t, r);
    q.owed = r.owed;
  }

  /// Token base units of one hour at `ratePerHour` (units USD × 1e9 per hour), at the current price.
  function hourlyToTokens(uint256 ratePerHour) public view returns (uint256) {
    return (ratePerHour * HOUR) / (TO_TOKENS * pricing.effectivePriceMusd());
  }

  function requireHourOf(address account, uint256 ratePerHour) external view {
    uint256 need = hourlyToTokens(ratePerHour);
    uint256 bal = token.balanceOf(account);
    if (bal < need) revert InsufficientFunds(need, bal);
  }

  // ---- internals ----

  function _callerNode() private view returns (uint32 nodeId) {
    nodeId = nodes.nodeIdByTwin(twins.requireTwin(msg.sender));
    if (nodeId == 0) revert Unauthorized("node");
  }

  function _hosted(uint64 id, uint32 nodeId) private view returns (ContractTerms memory t) {
    t = gridContracts.billingTerms(id);
    if (t.kind != ContractKind.Node || t.nodeId != nodeId) revert NotOwner("contract hosted on this node", id);
  }

  /// Cost (units USD × 1e9 × 3600) of `secs` seconds of the contract, and of the farmer's extra fee.
  function _accrual(ContractTerms memory t, Resources memory used, uint256 secs) private view returns (uint256 cost, uint256 extra) {
    if (secs == 0 || t.state == ContractState.Deleted) return (0, 0);
    if (t.kind == ContractKind.Name) return (pricing.nameRate() * secs, 0);
    (, , bool certified, bool down, Resources memory r, uint64 extraFee) = nodes.nodeTerms(t.nodeId);
    (, uint32 policyId, ) = farms.farmTerms(t.farmId);
    if (t.kind == ContractKind.Rent) {
      if (down) return (0, 0); // a rented node in standby is not billed
      return (pricing.rentRate(policyId, r, certified) * secs, pricing.extraFeeRate(extraFee) * secs);
    }
    return (pricing.nodeContractRate(policyId, used, t.publicIps, t.rentContractId != 0, certified) * secs, 0);
  }

  function _accrue(ContractTerms memory t, Record storage r) private {
    uint256 secs = block.timestamp - r.lastAccrual;
    if (secs == 0) return;
    (uint256 a, uint256 e) = _accrual(t, r.used, secs);
    r.accrued += a;
    r.accruedExtra += e;
    r.lastAccrual = uint64(block.timestamp);
  }

  /// Converts accrued cost to tokens; the discount depends on how many months of this cost the balance
  /// holds: >= 18 gold (-60 %), >= 6 silver (-40 %), >= 3 bronze (-30 %), >= 1.5 default (-20 %).
  function _quote(ContractTerms memory t, Record memory r) private view returns (Quote memory q) {
    uint256 price = pricing.effectivePriceMusd();
    q.due = r.accrued / (TO_TOKENS * price);
    q.extra = r.accruedExtra / (TO_TOKENS * price);
    uint256 elapsed = block.timestamp - r.lastBilled;
    uint256 pct = 100;
    if (q.due > 0 && elapsed > 0) {
      // months = balance / (due per month) = balance × elapsed / (due × MONTH); compared in halves
      uint256 lhs = token.balanceOf(twins.accountOf(t.twinId)) * elapsed * 2;
      uint256 month = q.due * MONTH;
      if (lhs >= 36 * month) (q.discountLevel, pct) = (4, 40);
      else if (lhs >= 12 * month) (q.discountLevel, pct) = (3, 60);
      else if (lhs >= 6 * month) (q.discountLevel, pct) = (2, 70);
      else if (lhs >= 3 * month) (q.discountLevel, pct) = (1, 80);
    }
    q.amount = (r.accrued * pct) / (TO_TOKENS * price * 100);
  }

  function _bill(ContractTerms memory t, bool last) private {
    Record storage r = records[t.id];
    _accrue(t, r);
    Quote memory q = _quote(t, r);
    r.accrued = 0;
    r.accruedExtra = 0;
    r.lastBilled = uint64(block.timestamp);
    uint256 due = r.owed + q.amount + q.extra;
    uint256 dueExtra = r.owedExtra + q.extra;
    address account = twins.accountOf(t.twinId);
    uint256 bal = token.balanceOf(account);
    uint256 paid = bal < due ? bal : due;
    uint256 toFarmer = paid < dueExtra ? paid : dueExtra;
    if (paid > 0) {
      token.collect(account, paid);
      _distribute(t, paid, toFarmer);
    }
    r.owed = due - paid;
    r.owedExtra = dueExtra - toFarmer;
    r.totalPaid += paid;
    if (q.amount + q.extra > 0 || paid > 0) {
      emit ContractBilled(t.id, uint64(block.timestamp), q.discountLevel, q.amount + q.extra, paid, r.owed);
    }
    if (last) return;
    if (r.owed == 0) {
      if (t.state == ContractState.GracePeriod) gridContracts.setGrace(t.id, false);
    } else if (t.state == ContractState.Created) {
      gridContracts.setGrace(t.id, true);
    } else if (block.timestamp >= uint256(t.graceStartedAt) + pricing.gracePeriod()) {
      gridContracts.deleteByBilling(t.id, DeleteCause.OutOfFunds);
    }
  }

  /// Pays the farmer's extra fee, then splits the rest.
  function _distribute(ContractTerms memory t, uint256 paid, uint256 toFarmer) private {
    if (toFarmer > 0) token.transfer(twins.accountOf(farms.farmTwin(t.farmId)), toFarmer);
    uint256 rest = paid - toFarmer;
    uint256[5] memory amt; // foundation, staking, sales, providers, burned
    if (rest > 0) amt = _split(t, rest);
    emit PayoutDistributed(t.id, toFarmer, amt[0], amt[1], amt[2], amt[3], amt[4]);
  }

  /// Foundation, staking pool, sales (minus the solution provider's takes); what remains is burned.
  function _split(ContractTerms memory t, uint256 rest) private returns (uint256[5] memory amt) {
    uint32 policyId = 1;
    if (t.kind != ContractKind.Name) (, policyId, ) = farms.farmTerms(t.farmId);
    (address foundation, address sales, address staking, uint8 fPct, uint8 sPct, uint8 salesPct) = pricing.payees(policyId);
    amt[0] = (rest * fPct) / 100;
    amt[1] = (rest * sPct) / 100;
    amt[2] = (rest * salesPct) / 100;
    if (t.solutionProviderId != 0) amt[3] = _payProviders(t.solutionProviderId, rest, amt[2]);
    amt[2] -= amt[3];
    if (amt[0] > 0) token.transfer(foundation, amt[0]);
    if (amt[1] > 0) token.transfer(staking, amt[1]);
    if (amt[2] > 0) token.transfer(sales, amt[2]);
    amt[4] = rest - amt[0] - amt[1] - amt[2] - amt[3];
    if (amt[4] > 0) token.burn(amt[4]);
  }

  /// Pays each provider its take of `rest`, all takes together capped at `cap` (the sales share).
  function _payProviders(uint64 sp, uint256 rest, uint256 cap) private returns (uint256 total) {
    (bool approved, address[] memory who, uint8[] memory takes) = pricing.solutionProviderTakes(sp);
    if (!approved) return 0;
    for (uint256 i = 0; i < who.length; i++) {
      uint256 t = (rest * takes[i]) / 100;
      if (total + t > cap) t = cap - total;
      total += t;
      if (t > 0) token.transfer(who[i], t);
    }
  }
}
