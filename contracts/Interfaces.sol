// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";

// The narrow views the registries use of each other. Only primitives and shared structs cross contract
// boundaries, so each contract compiles (and stays under the 24 KiB code limit) on its own.

interface ITwins {
  function twinIdOf(address account) external view returns (uint32);
  function requireTwin(address account) external view returns (uint32);
  function accountOf(uint32 twinId) external view returns (address);
}

interface IFarms {
  function farmTwin(uint32 farmId) external view returns (uint32);
  function farmTerms(uint32 farmId) external view returns (uint32 twinId, uint32 pricingPolicyId, bool dedicated);
  function reserveIps(uint32 farmId, uint64 contractId, uint32 count) external returns (uint32[] memory);
  function releaseIps(uint32 farmId, uint64 contractId) external returns (uint32);
}

interface INodes {
  function nodeIdByTwin(uint32 twinId) external view returns (uint32);
  function nodeTerms(uint32 nodeId)
    external
    view
    returns (uint32 farmId, uint32 twinId, bool certified, bool down, Resources memory resources, uint64 extraFeeMusd);
}

interface IPricing {
  function policyExists(uint32 policyId) external view returns (bool);
  function nodeContractRate(uint32 policyId, Resources memory used, uint32 publicIps, bool rented, bool certified)
    external
    view
    returns (uint256);
  function rentRate(uint32 policyId, Resources memory r, bool certified) external view returns (uint256);
  function nameRate() external view returns (uint256);
  function extraFeeRate(uint64 extraFeeMusd) external pure returns (uint256);
  function nuCost(uint32 policyId, uint64 nru) external view returns (uint256);
  function payees(uint32 policyId)
    external
    view
    returns (address foundation, address sales, address stakingPool, uint8 foundationPct, uint8 stakingPct, uint8 salesPct);
  function effectivePriceMusd() external view returns (uint64);
  function gracePeriod() external view returns (uint64);
  function solutionProviderTakes(uint64 id) external view returns (bool approved, address[] memory who, uint8[] memory takes);
}

interface IGridContracts {
  /// Active node contracts on the node, and its active rent contract (0 = none).
  function nodeLoad(uint32 nodeId) external view returns (uint32 activeNodeContracts, uint64 rentContractId);
  function contractCount() external view returns (uint64);
  function billingTerms(uint64 id) external view returns (ContractTerms memory);
  function setGrace(uint64 id, bool inGrace) external;
  function deleteByBilling(uint64 id, DeleteCause cause) external;
}

interface IBilling {
  function open(uint64 id) external;
  function settle(uint64 id) external;
  /// Reverts with InsufficientFunds unless `account` holds one hour of `ratePerHour` (units USD × 1e9 per hour).
  function requireHourOf(address account, uint256 ratePerHour) external view;
}

interface IZosToken {
  function balanceOf(address account) external view returns (uint256);
  function transfer(address to, uint256 value) external returns (bool);
  function collect(address from, uint256 value) external;
  function burn(uint256 value) external;
}
