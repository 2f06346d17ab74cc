// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import "./Types.sol";

/// The payment token of the grid (ERC-20, 7 decimals like TFT, so TFChain amounts carry over).
/// Two additions to plain ERC-20:
///  - `faucet` mints test tokens, but only on the development chain id fixed at deployment (0 = never);
///  - the billing contract (`biller`, wired once by the deployer) may `collect` what a contract owes from its
///    owner's balance, as TFChain's billing pallet does, so users need no per-contract allowance.
contract ZosToken {
  string public constant name = "ZOS Grid Token";
  string public constant symbol = "ZGT";
  uint8 public constant decimals = 7;
  /// Largest amount one faucet call may mint: 1,000,000 tokens.
  uint256 public constant FAUCET_MAX = 1_000_000 * 10 ** 7;

  uint256 public totalSupply;
  mapping(address => uint256) public balanceOf;
  mapping(address => mapping(address => uint256)) public allowance;

  address public immutable deployer;
  /// Chain id on which the faucet works; 0 disables it for good.
  uint256 public immutable faucetChainId;
  address public biller;

  event Transfer(address indexed from, address indexed to, uint256 value);
  event Approval(address indexed owner, address indexed spender, uint256 value);
  event FaucetMinted(address indexed to, uint256 value);
  event BillerSet(address biller);

  constructor(uint256 faucetChainId_) {
    deployer = msg.sender;
    faucetChainId = faucetChainId_;
  }

  function setBiller(address biller_) external {
    if (msg.sender != deployer) revert Unauthorized("deployer");
    if (biller != address(0)) revert InvalidState("token", 0, "biller already set");
    if (biller_ == address(0)) revert InvalidInput("biller", "zero address");
    biller = biller_;
    emit BillerSet(biller_);
  }

  function transfer(address to, uint256 value) external returns (bool) {
    _move(msg.sender, to, value);
    return true;
  }

  function approve(address spender, uint256 value) external returns (bool) {
    allowance[msg.sender][spender] = value;
    emit Approval(msg.sender, spender, value);
    return true;
  }

  function transferFrom(address from, address to, uint256 value) external returns (bool) {
    uint256 allowed = allowance[from][msg.sender];
    if (allowed != type(uint256).max) {
      if (allowed < value) revert InsufficientFunds(value, allowed);
      allowance[from][msg.sender] = allowed - value;
    }
    _move(from, to, value);
    return true;
  }

  /// Mints `value` to `to`; development chain only.
  function faucet(address to, uint256 value) external {
    if (faucetChainId == 0 || block.chainid != faucetChainId) revert Unauthorized("faucet");
    if (value == 0 || value > FAUCET_MAX) revert InvalidInput("value", "must be 1..FAUCET_MAX base units");
    if (to == address(0)) revert InvalidInput("to", "zero address");
    totalSupply += value;
    balanceOf[to] += value;
    emit Transfer(address(0), to, value);
    emit FaucetMinted(to, value);
  }

  /// Moves what a contract owes from its owner to the billing contract; callable by the billing contract only.
  function collect(address from, uint256 value) external {
    if (msg.sender != biller) revert Unauthorized("billing");
    _move(from, msg.sender, value);
  }

  /// Destroys `value` of the caller's tokens (the burned share of every bill).
  function burn(uint256 value) external {
    uint256 bal = balanceOf[msg.sender];
    if (bal < value) revert InsufficientFunds(value, bal);
    balanceOf[msg.sender] = bal - value;
    totalSupply -= value;
    emit Transfer(msg.sender, address(0), value);
  }

  function _move(address from, address to, uint256 value) private {
    if (to == address(0)) revert InvalidInput("to", "zero address");
    uint256 bal = balanceOf[from];
    if (bal < value) revert InsufficientFunds(value, bal);
    unchecked {
      balanceOf[from] = bal - value;
    }
    balanceOf[to] += value;
    emit Transfer(from, to, value);
  }
}
