// Package deploy holds no code: its tests check the deployment files beside them.
package deploy
