// The typed ABIs in src/ledger/abi.ts are generated from contracts/*.sol: this fails when they drift apart,
// and checks every contract stays under the EVM code size limit.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as abis from '../../src/ledger/abi.js'
import { CODE_SIZE_LIMIT, CONTRACT_NAMES, loadArtifacts, renderAbiModule } from '../../src/ledger/artifacts.js'

test('abi - src/ledger/abi.ts matches the compiled contracts (regenerate with zos ledger compile --abi-out src/ledger/abi.ts)', async () => {
  const artifacts = await loadArtifacts()
  assert.equal(abis.ABI_HASH, artifacts.abiHash)
  for (const name of CONTRACT_NAMES) {
    const ident = `${name[0]!.toLowerCase()}${name.slice(1)}Abi` as keyof typeof abis
    assert.deepEqual(abis[ident], artifacts.contracts[name].abi, `${name} ABI`)
    assert.ok(artifacts.contracts[name].codeSize > 0 && artifacts.contracts[name].codeSize <= CODE_SIZE_LIMIT, `${name} is ${artifacts.contracts[name].codeSize} bytes`)
  }
  assert.match(renderAbiModule(artifacts), /^\/\/ GENERATED/)
})
