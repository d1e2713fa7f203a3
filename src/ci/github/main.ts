// The GitHub Action entry point; filled by the CI adapters issue.
import * as core from '@actions/core';

core.setFailed('kiln action: not implemented yet');
